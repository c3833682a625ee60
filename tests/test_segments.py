"""Incremental updates equal a full rebuild: random sequences of pages added, changed and
removed, updated in place (segments, deletion masks, merges), rank and score exactly like a
fresh build of the same archive in both fields, hold the same live passages with the same page
dates and short ids, and open the same whole articles by those ids; `index --status --json`
says what it holds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.engine import open_searcher
from bot.settings import Settings
from retrieval.ids import id_of
from retrieval.manifest import FORMAT_VERSION, SegmentInfo
from retrieval.models import Passage
from retrieval.search import Searcher
from retrieval.segments import build_index, merge_plan, merge_segments, update_index
from retrieval.store import Index, open_index
from retrieval.tokenize import Tokenizer
from tests.conftest import SEEDS
from tests.fakes.harness import command

TOKENIZER = Tokenizer()
SENTENCES = [
    "溧阳暑托班今年开设四十多家,服务职工子女。",
    "市图书馆新增藏书八万册,周末延长开放时间。",
    "茶叶节在白河镇开幕,游客品尝新茶。",
    "暑托班由总工会主办,大学生志愿者辅导作业。",
    "城市公交新开三条线路,方便市民出行。",
    "白河镇修建水库,蓄水三百万方。",
    "图书馆举办读书节,吸引市民参加。",
    "新茶上市价格平稳,茶农收入增加。",
]
QUESTIONS = [
    "溧阳暑托班有多少家",
    "图书馆藏书",
    "白河镇 茶叶",
    "市民出行公交",
    "水库蓄水",
    "读书",
    "2024年3月3日 图书馆",  # names a date: the candidates are re-ranked by page date
]

pages = st.lists(st.integers(0, len(SENTENCES) - 1), min_size=1, max_size=6)
edits = st.lists(
    st.tuples(st.sampled_from(["add", "change", "remove"]), st.integers(0, 5), pages),
    min_size=1,
    max_size=6,
)


def write_page(archive: Path, name: str, sentences: list[int], stamp: int) -> None:
    """A page with a masthead date, a headline and paragraphs of the chosen sentences, with a
    distinct mtime."""
    body = "\n\n".join(SENTENCES[i] for i in sentences)
    path = archive / name
    masthead = f"2024年3月{1 + stamp % 5}日 星期三"
    path.write_text(f"{masthead}\n\n本地新闻{sentences[0]}\n\n{body}\n", "utf-8")
    os.utime(path, ns=(stamp * 10**9, stamp * 10**9))


def ranked(index: Index, field: str, tokens: object) -> list[tuple[str, float]]:
    """A field's top 10 as (passage id, score), ties ordered by passage id."""
    postings = index.fields[field].gather(tokens)  # type: ignore[arg-type]
    ids, scores = index.fields[field].top(postings, 10)
    pairs = [
        (index.passages[int(i)].passage_id, round(float(s), 9))
        for i, s in zip(ids, scores, strict=True)
    ]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def live_passages(index: Index) -> list[Passage]:
    """Every live passage of an index, whichever segment holds it."""
    masks = [
        np.zeros(s.info.passages, bool) if s.deleted is None else s.deleted for s in index.segments
    ]
    return [index.passages[int(i)] for i in np.flatnonzero(~np.concatenate(masks))]


def assert_same_passages(updated: Index, fresh: Index) -> None:
    """The same live passages (ids, texts, sources with page dates), and every short id opens
    the same whole article in both."""
    got, want = live_passages(updated), live_passages(fresh)
    assert {(p.passage_id, p.text, p.source) for p in got} == {
        (p.passage_id, p.text, p.source) for p in want
    }
    assert any(p.source.date is not None for p in want)
    searchers = Searcher(updated, TOKENIZER), Searcher(fresh, TOKENIZER)
    for passage in want:
        short = id_of(passage.passage_id)
        assert searchers[0].article(short) == searchers[1].article(short)


def assert_same_as_fresh_build(archive: Path, root: Path, tmp: Path) -> None:
    """The updated index at `root` ranks and scores like a full build of `archive`."""
    fresh_root = tmp / "fresh"
    shutil.rmtree(fresh_root, ignore_errors=True)
    build_index(archive, fresh_root, TOKENIZER)
    updated, fresh = open_index(root), open_index(fresh_root)
    assert updated.manifest.passages == fresh.manifest.passages
    assert updated.manifest.tokens == fresh.manifest.tokens
    assert updated.manifest.articles == fresh.manifest.articles
    assert_same_passages(updated, fresh)
    for index in (updated, fresh):  # the kernels' table holds the per-posting weights' bits
        for field in index.fields.values():
            lengths, ratios = field.scoring
            tf = np.arange(256.0)[:, np.newaxis]
            weights = tf * (field.params.k1 + 1) / (tf + field.norm)
            assert ratios.reshape(256, -1)[:, lengths].tobytes() == weights.tobytes()
    searchers = Searcher(updated, TOKENIZER), Searcher(fresh, TOKENIZER)
    for question in QUESTIONS:
        query = searchers[0].query(question)
        for field, tokens in (("words", query.words), ("bigrams", query.bigrams)):
            got, want = ranked(updated, field, tokens), ranked(fresh, field, tokens)
            assert [p for p, _ in got] == [p for p, _ in want], (question, field)
            np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)
        got_hits, want_hits = (s.search(query, top_k=10) for s in searchers)
        np.testing.assert_allclose(
            [h.score for h in got_hits], [h.score for h in want_hits], atol=1e-6
        )
        # Near-duplicates are shown once: which copy is shown is a tie, so compare texts.
        assert sorted((round(h.score, 6), h.passage.text) for h in got_hits) == sorted(
            (round(h.score, 6), h.passage.text) for h in want_hits
        )


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    initial=st.lists(pages, min_size=1, max_size=4),
    steps=st.lists(edits, min_size=1, max_size=3),
    merge=st.booleans(),
)
def test_updates_equal_a_full_rebuild(
    tmp_path_factory: pytest.TempPathFactory,
    initial: list[list[int]],
    steps: list[list[tuple[str, int, list[int]]]],
    merge: bool,
) -> None:
    tmp = tmp_path_factory.mktemp("living")
    archive, root = tmp / "archive", tmp / "index"
    archive.mkdir()
    stamp = 1_000
    for n, sentences in enumerate(initial):
        stamp += 1
        write_page(archive, f"p{n}.txt", sentences, stamp)
    build_index(archive, root, TOKENIZER)
    for batch in steps:
        for action, n, sentences in batch:
            stamp += 1
            name = f"p{n}.txt"
            if action == "remove":
                (archive / name).unlink(missing_ok=True)
            else:
                write_page(archive, name, sentences, stamp)
        if not list(archive.glob("*.txt")):
            write_page(archive, "p9.txt", [0], stamp)
        update_index(archive, root, TOKENIZER, merge=False)
        if merge:
            merge_segments(root, max_segments=1, max_deleted_share=0.0)
        assert_same_as_fresh_build(archive, root, tmp)
    names = {path.name for path in root.iterdir()}
    assert names == {"CURRENT", "build.lock", open_index(root).commit.name} | {
        s.name for s in open_index(root).manifest.segments
    }  # nothing unreferenced is left behind


def test_an_update_reads_only_what_changed(tmp_path: Path) -> None:
    archive, root = tmp_path / "archive", tmp_path / "index"
    shutil.copytree(SEEDS, archive)
    build_index(archive, root, TOKENIZER)
    (archive / "new.txt").write_text("科技新闻\n\n首颗量子卫星发射成功。\n", "utf-8")
    first = sorted(archive.glob("0*.txt"))[0]
    first.unlink()
    stats = update_index(archive, root, TOKENIZER)
    assert (stats.changes.added, stats.changes.removed) == (("new.txt",), (first.name,))
    assert not stats.full and stats.segments == 2
    searcher = Searcher(open_index(root), TOKENIZER)
    assert searcher.search("量子卫星", top_k=1)[0].passage.source.file == "new.txt"
    assert all(h.passage.source.file != first.name for h in searcher.search("溧阳", top_k=50))
    again = update_index(archive, root, TOKENIZER)
    assert not again.changes and again.segments == 2


def test_merge_policy() -> None:
    def seg(name: str, passages: int, deleted: int = 0) -> SegmentInfo:
        return SegmentInfo(name, passages, deleted, None, 0)

    few = [seg("a", 1000), seg("b", 10), seg("c", 20)]
    assert merge_plan(few, max_segments=10) == []
    assert merge_plan([seg("a", 1000, 400), seg("b", 10)], max_segments=10) == ["a"]
    many = [seg("big", 1000)] + [seg(f"s{i}", 10 + i) for i in range(10)]
    plan = merge_plan(many, max_segments=10)
    assert "big" not in plan and len(plan) == 7 and plan[0] == "s0"


def test_index_status_json(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(SEEDS, archive)
    environ = {
        **os.environ,
        "ARCHIVE_BOT_ARCHIVE_DIR": str(archive),
        "ARCHIVE_BOT_INDEX_DIR": str(tmp_path / "index"),
    }

    def cli(*args: str) -> str:
        done = subprocess.run(
            [*command(), *args], env=environ, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("index")
    (archive / "new.txt").write_text("科技新闻\n\n首颗量子卫星发射成功。\n", "utf-8")
    removed = min(archive.glob("0*.txt"), key=lambda path: path.stat().st_size)
    removed.unlink()  # the smallest page: too few deletions to merge its segment at once
    status = json.loads(cli("index", "--status", "--json"))
    assert status["pending"]["added"] == {"count": 1, "names": ["new.txt"]}
    assert status["pending"]["removed"] == {"count": 1, "names": [removed.name]}
    assert len(status["segments"]) == 1 and status["passages"]["deleted"] == 0
    assert "Updated (1 added, 0 changed, 1 removed)" in cli("index")
    status = json.loads(cli("index", "--status", "--json"))
    assert status["pending"]["added"]["count"] == 0 and len(status["segments"]) == 2
    assert status["passages"]["deleted"] > 0 and status["passages"]["live"] > 0
    assert "Indexed" in cli("index", "--full")
    status = json.loads(cli("index", "--status", "--json"))
    assert len(status["segments"]) == 1 and status["passages"]["deleted"] == 0
    assert "passages live" in cli("index", "--status")


def test_readers_during_updates_get_the_old_state_or_the_new(tmp_path: Path) -> None:
    archive, root = tmp_path / "archive", tmp_path / "index"
    shutil.copytree(SEEDS, archive)
    build_index(archive, root, TOKENIZER)
    running = Searcher(open_index(root), TOKENIZER)  # a bot already answering
    states = {open_index(root).manifest.passages}
    seen: list[int] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_opening() -> None:
        while not stop.is_set():
            try:
                index = open_index(root)
                seen.append(index.manifest.passages)
                assert Searcher(index, TOKENIZER).search("暑托班", top_k=1)
                assert running.search("暑托班", top_k=1)
            except BaseException as error:  # reported below
                failures.append(error)
                return

    reader = threading.Thread(target=keep_opening)
    reader.start()
    try:
        for n in range(6):
            (archive / f"new{n}.txt").write_text(f"科技新闻\n\n第{n}颗卫星发射成功。\n", "utf-8")
            update_index(archive, root, TOKENIZER)
            states.add(open_index(root).manifest.passages)
    finally:
        stop.set()
        reader.join()
    assert not failures, failures
    assert set(seen) <= states and len(seen) > 1


def test_an_index_of_the_old_format_is_rebuilt(tmp_path: Path) -> None:
    root = tmp_path / "index"
    old = root / "gen-1700000000000000000-1"  # format 4: one folder a build, meta.json inside
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"format_version": 4}), "utf-8")
    (root / "CURRENT").write_text(old.name, "utf-8")
    searcher = open_searcher(Settings(archive_dir=SEEDS, index_dir=root))
    assert searcher.search("暑托班", top_k=1)
    assert not old.exists() and open_index(root).manifest.format_version == FORMAT_VERSION
