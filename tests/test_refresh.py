"""The running bot and REPL follow the archive: a page that lands is answered from within
seconds, a page removed is forgotten, a page still being written waits (`bot.refresh`)."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

from bot.engine import open_searcher
from bot.refresh import Refresher
from bot.settings import Settings
from retrieval.search import Searcher
from tests.conftest import SEEDS
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.harness import bot_process, command, stop, wait_call, wait_started
from tests.test_telegram import shown

NEWS = "科技新闻\n\n首颗量子卫星墨子号发射成功。\n"
QUESTION = "量子卫星墨子号"


def land(path: Path, text: str, *, age: float = 10.0) -> None:
    """Write a page whose mtime is `age` seconds old (a finished drop)."""
    path.write_text(text, "utf-8")
    then = time.time_ns() - int(age * 1e9)
    os.utime(path, ns=(then, then))


def files(searcher: Searcher) -> set[str]:
    """The files of the passages the question finds."""
    return {hit.passage.source.file for hit in searcher.search(QUESTION, top_k=10)}


def living_settings(tmp_path: Path, **values: object) -> Settings:
    archive = tmp_path / "archive"
    shutil.copytree(SEEDS, archive)
    return Settings(archive_dir=archive, index_dir=tmp_path / "index", **values)  # type: ignore[arg-type]


def test_a_page_still_being_written_waits(tmp_path: Path) -> None:
    settings = living_settings(tmp_path, refresh_seconds=60)
    searcher = open_searcher(settings)
    refresher = Refresher(settings, searcher)
    page = settings.archive_dir / "new.txt"
    land(page, NEWS, age=0)  # just written: may still be growing
    assert refresher.check() is None and refresher.pending and refresher.delay == 2.0
    land(page, NEWS + "又一段。\n")  # changed since the last check: still being written
    assert refresher.check() is None and refresher.pending
    assert "new.txt" not in files(searcher)
    done = refresher.check()  # the same as last time, and old enough
    assert done is not None and done.changes.added == ("new.txt",) and not refresher.pending
    assert searcher.search(QUESTION, top_k=1)[0].passage.source.file == "new.txt"
    page.unlink()
    gone = refresher.check()
    assert gone is not None and gone.changes.removed == ("new.txt",)
    assert "new.txt" not in files(searcher)


def test_the_running_bot_answers_a_new_page_and_forgets_a_removed_one(
    api: FakeBotApi, tmp_path: Path
) -> None:
    settings = living_settings(tmp_path)
    open_searcher(settings)  # built before the bot starts
    process = bot_process(api, settings, tmp_path, ARCHIVE_BOT_REFRESH_SECONDS="0.5")

    def ask() -> str:
        count = len(api.calls("sendMessage")) + 1
        api.push_message(QUESTION)
        return shown(wait_call(api, process, "sendMessage", count=count, timeout=20))

    try:
        wait_started(api, process)
        assert "墨子号" not in ask()
        land(settings.archive_dir / "new.txt", NEWS)
        landed = time.monotonic()
        while "墨子号" not in ask():
            assert time.monotonic() - landed < 20, "the new page was not picked up"
            time.sleep(0.3)
        (settings.archive_dir / "new.txt").unlink()
        removed = time.monotonic()
        while "墨子号" in ask():
            assert time.monotonic() - removed < 20, "the removed page is still answered"
            time.sleep(0.3)
    finally:
        _, err = stop(process)
    assert process.returncode == 0, err
    assert "Archive changed (1 added, 0 changed, 0 removed)" in err
    assert "Archive changed (0 added, 0 changed, 1 removed)" in err
    assert "Traceback" not in err


def _read_until(
    fd: int, text: str, seen: bytearray, *, count: int = 1, timeout: float = 60
) -> str:
    """Read a child's output until `text` occurs `count` times in all of it (or fail)."""
    deadline = time.monotonic() + timeout
    while seen.decode("utf-8", "ignore").count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} in {seen.decode('utf-8', 'ignore')}"
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"output ended before {text!r}: {seen.decode('utf-8', 'ignore')}"
            seen.extend(chunk)
    return seen.decode("utf-8", "ignore")


def test_the_repl_answers_a_new_page(tmp_path: Path) -> None:
    settings = living_settings(tmp_path)
    open_searcher(settings)
    environ = {
        **os.environ,
        "ARCHIVE_BOT_ARCHIVE_DIR": str(settings.archive_dir),
        "ARCHIVE_BOT_INDEX_DIR": str(settings.resolved_index_dir),
        "ARCHIVE_BOT_REFRESH_SECONDS": "0.3",
        "HOME": str(tmp_path),
    }
    repl = subprocess.Popen(
        [*command(), "repl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environ,
    )
    assert repl.stdin is not None and repl.stdout is not None and repl.stderr is not None
    out, err = bytearray(), bytearray()
    try:
        repl.stdin.write(f"{QUESTION}\n".encode())
        repl.stdin.flush()
        _read_until(repl.stdout.fileno(), "问> ", out, count=2)  # answered, asks again
        land(settings.archive_dir / "new.txt", NEWS)
        # Logged once the searcher has switched to the updated index.
        _read_until(repl.stderr.fileno(), "Archive changed (1 added", err, timeout=30)
        _read_until(repl.stderr.fileno(), "index updated in", err, timeout=30)
        repl.stdin.write(f"{QUESTION}\n:quit\n".encode())
        repl.stdin.flush()
        rest, _ = repl.communicate(timeout=60)
    finally:
        if repl.poll() is None:
            repl.kill()
    assert repl.returncode == 0, err.decode()
    first, second = (out + rest).decode().split("问> ")[1:3]
    assert "墨子号" not in first and "墨子号" in second, out
