"""Bad archives and broken indexes: files in every encoding or none, builds killed or out of disk
space at any write, two builders at once, damaged indexes rebuilt with a log line, empty
archives. The previous index stays usable throughout; one bad file never stops a build."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from unittest import mock

import pytest

from bot.engine import open_searcher
from bot.errors import IndexWriteError
from bot.settings import Settings
from retrieval.errors import ArchiveError
from retrieval.search import Searcher
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer
from tests.conftest import REPO, SEEDS
from tests.fakes.harness import command

EXAMPLE = "溧阳暑托班有多少家"
ANSWER = "40多家"
BUILDER = (sys.executable, "-m", "tests.fakes.builder")


def answers(root: Path) -> bool:
    """Whether the index at `root` opens and answers the example question."""
    result = Searcher(open_index(root), Tokenizer()).ask(EXAMPLE, top_k=3)
    return result.answer is not None and ANSWER in result.answer.sentence


def builder(*args: str, timeout: float = 120) -> list[dict]:
    """Run tests/fakes/builder.py in a process of its own; its JSON lines."""
    done = subprocess.run(
        [*BUILDER, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def folder_size(root: Path) -> int:
    """Bytes of every file below a folder."""
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


@pytest.fixture
def index_root(tmp_path: Path) -> Path:
    """A folder holding a complete index of the seeds (the "previous index")."""
    root = tmp_path / "index"
    build_index(SEEDS, root, Tokenizer())
    return root


# Builds interrupted at any write -----------------------------------------------------------


def test_build_killed_at_any_write_leaves_the_previous_index_usable(index_root: Path) -> None:
    size = folder_size(index_root)
    results = builder("kill", str(SEEDS), str(index_root))
    assert len(results) >= 8
    for result in results:
        assert result.get("signal") == 9, result  # killed before it finished
        assert result["answers"] is True, result  # and the index still answers
    build_index(SEEDS, index_root, Tokenizer())  # the next build succeeds and tidies up
    assert answers(index_root)
    assert folder_size(index_root) < 1.5 * size  # what the killed builds left is gone


def test_full_disk_at_any_write_is_a_clear_error_and_keeps_the_index(index_root: Path) -> None:
    results = builder("full", str(SEEDS), str(index_root))
    failed = [r for r in results if r["error"] is not None]
    # The first writes (the index folder that exists, the lock file) are retried by design.
    assert len(failed) >= len(results) - 3, results
    assert all(r["errno"] == errno.ENOSPC for r in failed)
    assert all(r["answers"] is True for r in results), results


@pytest.mark.parametrize("operation", ["update", "merge"])
def test_update_or_merge_killed_at_any_write_leaves_the_old_state_or_the_new(
    tmp_path: Path, operation: str
) -> None:
    *results, final = builder(f"kill-{operation}", str(SEEDS), str(tmp_path / "index"))
    assert len(results) >= 6
    for result in results:
        assert result.get("signal") == 9, result  # killed before it finished
        assert result["answers"] is True, result  # the index still answers
    # Killed before `CURRENT` was switched: the old state; after it: the new one, never a mix.
    assert {r["state"] for r in results} == {0, 1}, results
    assert final == {"final": True, "answers": True}


@pytest.mark.parametrize("operation", ["update", "merge"])
def test_update_or_merge_on_a_full_disk_keeps_the_old_state(
    tmp_path: Path, operation: str
) -> None:
    *results, final = builder(f"full-{operation}", str(SEEDS), str(tmp_path / "index"))
    failed = [r for r in results if r["error"] is not None]
    assert len(failed) >= len(results) - 3, results  # the lock file's first write is retried
    assert all(r["errno"] == errno.ENOSPC and r["state"] == 0 for r in failed), failed
    assert all(r["answers"] is True for r in results), results
    assert final == {"final": True, "answers": True}


def test_cli_index_on_a_full_disk_says_what_to_do(index_root: Path, tmp_path: Path) -> None:
    environ = {
        **os.environ,
        "ARCHIVE_BOT_ARCHIVE_DIR": str(SEEDS),
        "ARCHIVE_BOT_INDEX_DIR": str(index_root),
    }
    done = subprocess.run(
        [*BUILDER, "cli-full", str(index_root), "6", "--", "index"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr and "ARCHIVE_BOT_INDEX_DIR" in done.stderr
    assert "Traceback" not in done.stderr
    assert answers(index_root)


def test_bot_keeps_answering_from_a_stale_index_when_the_rebuild_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(SEEDS, archive)
    settings = Settings(archive_dir=archive, index_dir=tmp_path / "index")
    open_searcher(settings)
    (archive / "new.txt").write_text("新闻标题\n\n今天有一条新的消息。\n", "utf-8")  # stale now
    full = OSError(errno.ENOSPC, "No space left on device")
    caplog.set_level(logging.INFO)
    with mock.patch("retrieval.segments.update_index", side_effect=full):  # a fault hard to cause
        searcher = open_searcher(settings)
    assert ANSWER in (searcher.ask(EXAMPLE).answer or mock.Mock(sentence="")).sentence
    assert "No space left on device" in caplog.text and "saved before" in caplog.text
    (tmp_path / "index2").mkdir()
    with (
        mock.patch("retrieval.segments.update_index", side_effect=full),
        pytest.raises(IndexWriteError, match="ARCHIVE_BOT_INDEX_DIR"),
    ):
        open_searcher(settings.model_copy(update={"index_dir": tmp_path / "index2"}))


def test_two_builders_at_once_leave_a_valid_index_and_a_running_searcher_unharmed(
    index_root: Path,
) -> None:
    running = Searcher(open_index(index_root), Tokenizer())  # as a bot that is already up
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_asking() -> None:
        while not stop.is_set():
            try:
                assert ANSWER in (running.ask(EXAMPLE).answer or mock.Mock(sentence="")).sentence
            except BaseException as error:  # reported below
                failures.append(error)
                return

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        processes = [
            subprocess.Popen(
                [*BUILDER, "build", str(SEEDS), str(index_root)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        stop.set()
        asker.join()
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert not failures, failures  # the old generation's files went, its searcher still works
    assert answers(index_root)


def test_opening_the_index_while_a_build_replaces_it(index_root: Path) -> None:
    [result] = builder("race", str(SEEDS), str(index_root))
    assert result["raced"]
    assert result["opened"], result["error"]


# Damaged indexes, empty archives -------------------------------------------------------------


def damage(root: Path, how: str) -> None:
    """Break a saved index the way a crash, a full disk or an old version would."""
    arrays = sorted(root.rglob("*.npy"), key=lambda path: path.stat().st_size)
    [meta_file] = root.glob("commit-*.json")
    if how == "missing .npy":
        arrays[-1].unlink()
    elif how == "truncated .npy":
        arrays[-1].write_bytes(arrays[-1].read_bytes()[:100])
    elif how == "empty .npy":
        arrays[0].write_bytes(b"")
    elif how == "bad commit":
        meta_file.write_text("{not json", "utf-8")
    elif how == "commit missing":
        meta_file.unlink()
    elif how == "older format":
        meta = json.loads(meta_file.read_text("utf-8"))
        meta["format_version"] = 0
        meta_file.write_text(json.dumps(meta), "utf-8")
    elif how == "pointer to nothing":
        [pointer] = [path for path in root.iterdir() if path.is_file() and path.name == "CURRENT"]
        pointer.write_text("gen-that-does-not-exist", "utf-8")


DAMAGES = [
    "missing .npy",
    "truncated .npy",
    "empty .npy",
    "bad commit",
    "commit missing",
    "older format",
    "pointer to nothing",
]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_index_is_rebuilt_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    settings = Settings(archive_dir=SEEDS, index_dir=tmp_path / "index")
    open_searcher(settings)
    damage(tmp_path / "index", how)
    caplog.set_level(logging.INFO, logger="bot.engine")
    searcher = open_searcher(settings)
    result = searcher.ask(EXAMPLE)
    assert result.answer is not None and ANSWER in result.answer.sentence
    rebuilt = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert rebuilt and rebuilt[0].levelno == logging.WARNING, caplog.text
    assert str(tmp_path / "index") in rebuilt[0].getMessage()
    assert "Index built" in caplog.text


def test_an_archive_without_text_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    with pytest.raises(ArchiveError, match="ARCHIVE_BOT_ARCHIVE_DIR"):
        open_searcher(Settings(archive_dir=archive, index_dir=tmp_path / "index"))
    (archive / "junk.txt").write_bytes(b"\x00\x01\x02" * 100)
    (archive / "empty.txt").write_bytes(b"")
    (archive / "notes.md").write_text("不是 .txt 文件", "utf-8")
    with pytest.raises(ArchiveError, match="ARCHIVE_BOT_ARCHIVE_DIR"):
        open_searcher(Settings(archive_dir=archive, index_dir=tmp_path / "index"))
    environ = {
        **os.environ,
        "ARCHIVE_BOT_ARCHIVE_DIR": str(archive),
        "ARCHIVE_BOT_INDEX_DIR": str(tmp_path / "index"),
    }
    done = subprocess.run(
        [*command(), "ask", EXAMPLE], env=environ, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "ARCHIVE_BOT_ARCHIVE_DIR" in done.stderr and "Traceback" not in done.stderr


# Bad files in an archive -------------------------------------------------------------------

FACTS = {
    "utf8.txt": ("utf-8", "青松县新建图书馆藏书八万册。"),
    "utf8_bom.txt": ("utf-8-sig", "白河镇修建水库蓄水三百万方。"),
    "utf16_le.txt": ("utf-16", "红旗村种植茶树一千二百亩。"),
    "utf16_be.txt": ("utf-16-be-bom", "金沙江大桥跨度八百米。"),
    "gb18030.txt": ("gb18030", "东湖公园栽种樱花五千株。"),
    "gbk.txt": ("gbk", "西山林场造林三万亩。"),
    "sub/deeper/crlf.txt": ("crlf", "南港码头吞吐量增长百分之九。"),
}


def encoded(text: str, codec: str) -> bytes:
    """A headline and a sentence, in one of the encodings archives come in."""
    page = f"本地新闻\n\n{text}\n"
    if codec == "utf-16-be-bom":
        return b"\xfe\xff" + page.encode("utf-16-be")
    if codec == "crlf":
        return page.replace("\n", "\r\n").encode("utf-8")
    return page.encode(codec)


def bad_archive(folder: Path) -> dict[str, str]:
    """An archive with one file of every kind; the files that must be skipped, and why."""
    for name, (codec, text) in FACTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(encoded(text, codec))
    huge_line = "长长的一行没有句号" * 30_000 + "结尾有海豚馆。"  # 270,000 characters
    (folder / "huge_line.txt").write_text(huge_line, "utf-8")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 8)
    (folder / "random.txt").write_bytes(random.Random(0).randbytes(4096))  # seeded: repeatable
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b" \r\n\t\n")
    (folder / "notes.md").write_text("不是档案：青松县图书馆", "utf-8")
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4 \x00\x01")
    (folder / "folder.txt").mkdir()
    (folder / "dangling.txt").symlink_to(folder / "nowhere.txt")
    return {
        "binary.txt": "not text",
        "random.txt": "not text",
        "empty.txt": "empty",
        "blank.txt": "empty",
        "folder.txt": "cannot be read",
        "dangling.txt": "cannot be read",
    }


def test_one_bad_file_never_stops_a_build(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    skipped = bad_archive(archive)
    caplog.set_level(logging.WARNING)
    stats = build_index(archive, tmp_path / "index", Tokenizer())
    assert stats.files == len(FACTS) + 1  # every encoding read, and the huge line
    assert set(stats.skipped) == set(skipped)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for name, reason in skipped.items():
        assert any(name in w and reason in w for w in warnings), (name, warnings)
    searcher = Searcher(open_index(tmp_path / "index"), Tokenizer())
    for name, (_, text) in FACTS.items():
        hits = searcher.search(text[:6], top_k=1)
        assert hits and hits[0].passage.source.file == name and text in hits[0].passage.text
    assert searcher.search("海豚馆", top_k=1)[0].passage.source.file == "huge_line.txt"
    assert not searcher.search("不是档案", top_k=1)  # .md files are not archive files


def test_unreadable_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "ok.txt").write_text("标题\n\n正文有内容。\n", "utf-8")
    (archive / "gone.txt").symlink_to(tmp_path / "nowhere.txt")  # unreadable, even for root
    (archive / "folder.txt").mkdir()
    unreadable = {"gone.txt", "folder.txt"}
    locked = archive / "locked.txt"
    locked.write_text("标题\n\n锁住的内容。\n", "utf-8")
    locked.chmod(0)
    if os.geteuid() != 0:  # root reads files whatever their mode
        unreadable.add("locked.txt")
    try:
        stats = build_index(archive, tmp_path / "index", Tokenizer())
    finally:
        locked.chmod(0o644)
    assert set(stats.skipped) == unreadable


def test_cli_index_names_the_skipped_files(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    skipped = bad_archive(archive)
    environ = {
        **os.environ,
        "ARCHIVE_BOT_ARCHIVE_DIR": str(archive),
        "ARCHIVE_BOT_INDEX_DIR": str(tmp_path / "index"),
    }
    done = subprocess.run(
        [*command(), "index"], env=environ, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    for name in skipped:
        assert f"skipped: {name}" in done.stdout


# Retrieval bugs found here, fixed since --------------------------------------------------------


def test_a_fifo_in_the_archive_does_not_hang_the_build(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "ok.txt").write_text("标题\n\n正文有内容。\n", "utf-8")
    os.mkfifo(archive / "pipe.txt")
    script = (
        "import sys; from pathlib import Path; from retrieval.segments import build_index; "
        "from retrieval.tokenize import Tokenizer; "
        "print(build_index(Path(sys.argv[1]), Path(sys.argv[2]), Tokenizer()).skipped)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(archive), str(tmp_path / "index")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3,  # a build of one small file takes about a second
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the build hung on a FIFO")
    assert done.returncode == 0 and "pipe.txt" in done.stdout, done.stderr


def test_a_huge_line_is_cut_into_passages_of_bounded_size(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    filler = "溧阳暑托班开课" * 25_000  # one line, no punctuation: 350,000 characters
    (archive / "huge.txt").write_text(filler + "海豚馆今天开放" + filler, "utf-8")
    stats = build_index(archive, tmp_path / "index", Tokenizer())
    assert stats.passages >= 350
    result = Searcher(open_index(tmp_path / "index"), Tokenizer()).ask("海豚馆", top_k=3)
    assert result.hits and "海豚馆" in result.hits[0].passage.text
    assert max(len(hit.passage.text) for hit in result.hits) <= 1_000
    assert result.answer is not None and len(result.answer.sentence) <= 1_000
