"""Build → save → open → search round trip, atomic generations, and damaged indexes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from bot.engine import open_searcher
from bot.settings import Settings
from retrieval import index as index_module
from retrieval import search as search_module
from retrieval.errors import ArchiveError, IndexCorruptError, IndexMissingError
from retrieval.ids import PassageKey, file_key
from retrieval.index import Field, FieldArrays, NpyColumn
from retrieval.manifest import FORMAT_VERSION
from retrieval.search import Searcher
from retrieval.segments import build_index
from retrieval.store import PassageArrays, PassageTable, current_commit, open_index
from retrieval.tokenize import Tokenizer

ARTICLE = """长江大桥通车

本报讯 昨日,新建的长江大桥正式通车,全长1200米,双向六车道。大桥历时三年建成。

市民王先生说,过江时间从四十分钟缩短到十分钟。

茶叶节开幕

第十届茶叶节在龙井村开幕,吸引游客3万人次。
"""


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    (folder / "2023").mkdir(parents=True)
    (folder / "2023" / "page1.txt").write_text(ARTICLE, encoding="utf-8")
    sport = "体育新闻\n\n女排夺得世界杯冠军,这是第十一次夺冠。\n"
    (folder / "page2.txt").write_text(sport, "utf-8")
    return folder


def test_round_trip(archive: Path, tmp_path: Path) -> None:
    tokenizer = Tokenizer()
    stats = build_index(archive, tmp_path / "index", tokenizer)
    assert stats.files == 2 and stats.passages >= 3 and stats.tokens > 10
    searcher = Searcher(open_index(tmp_path / "index"), tokenizer)
    hits = searcher.search("长江大桥全长多少米", top_k=2)
    assert hits[0].passage.source.file == "2023/page1.txt"
    assert hits[0].passage.source.title == "长江大桥通车"
    assert "1200米" in hits[0].passage.text
    result = searcher.ask("长江大桥全长多少米")
    assert result.answer is not None and "1200米" in result.answer.sentence
    assert searcher.search("女排", top_k=1)[0].passage.source.file == "page2.txt"


def test_unknown_words_give_no_hits(archive: Path, tmp_path: Path) -> None:
    tokenizer = Tokenizer()
    build_index(archive, tmp_path / "index", tokenizer)
    searcher = Searcher(open_index(tmp_path / "index"), tokenizer)
    assert searcher.search("量子计算机", top_k=3) == []
    assert searcher.ask("？？？").hits == ()


def test_rebuild_switches_generation_and_removes_the_old(archive: Path, tmp_path: Path) -> None:
    root = tmp_path / "index"
    build_index(archive, root, Tokenizer())
    first, [segment] = current_commit(root), open_index(root).manifest.segments
    build_index(archive, root, Tokenizer())
    assert current_commit(root) != first and not first.exists()
    assert not (root / segment.name).exists()


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="archive-bot index"):
        open_index(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchiveError, match="ARCHIVE_BOT_ARCHIVE_DIR"):
        build_index(tmp_path / "empty", tmp_path / "index", Tokenizer())
    assert not (tmp_path / "index" / "CURRENT").exists()


@pytest.mark.parametrize(
    "damage", ["missing_npy", "bad_meta", "old_format", "truncated_npy", "truncated_rows"]
)
def test_damaged_index_is_detected(archive: Path, tmp_path: Path, damage: str) -> None:
    root = tmp_path / "index"
    build_index(archive, root, Tokenizer())
    commit = current_commit(root)
    generation = root / open_index(root).manifest.segments[0].name
    if damage == "missing_npy":
        (generation / "words.docs.npy").unlink()
    elif damage == "bad_meta":
        commit.write_text("{not json", "utf-8")
    elif damage == "old_format":
        meta = json.loads(commit.read_text("utf-8"))
        meta["format_version"] = FORMAT_VERSION - 1
        commit.write_text(json.dumps(meta), "utf-8")
    else:
        name = "bigrams.offsets.npy" if damage == "truncated_npy" else "passages.rows.npy"
        path = generation / name
        path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IndexCorruptError, match="rebuild"):
        open_index(root)


def test_engine_rebuilds_damaged_or_stale_index(archive: Path, tmp_path: Path) -> None:
    settings = Settings(archive_dir=archive, index_dir=tmp_path / "index")
    open_searcher(settings)
    current_commit(tmp_path / "index").unlink()
    assert open_searcher(settings).search("茶叶节", top_k=1)  # rebuilt, not crashed
    page = archive / "page2.txt"
    page.write_text("科技新闻\n\n首颗量子卫星发射成功。\n", "utf-8")
    os.utime(page, ns=(1, 1))
    assert open_searcher(settings).search("量子卫星", top_k=1)  # archive changed → rebuilt


def test_passages_read_by_pread_equal_the_saved_arrays(archive: Path, tmp_path: Path) -> None:
    """The opened table reads its per-passage arrays by `pread` (nothing of them mapped) and
    gives the passages, dates and articles that the saved arrays, loaded whole, give."""
    root = tmp_path / "index"
    build_index(archive, root, Tokenizer())
    segment = open_index(root).segments[0]
    folder = root / segment.info.name
    opened = PassageArrays.open(folder)
    assert all(isinstance(a, NpyColumn) for a in (opened.rows, opened.text_offsets, opened.dates))
    whole = PassageArrays(
        **{name: np.load(folder / f"passages.{name}.npy") for name in PassageArrays.__slots__}
    )
    texts = np.fromfile(folder / "passages.text.bin", dtype=np.uint8)
    loaded, read = PassageTable(whole, texts), segment.passages
    assert len(read) == len(loaded) >= 3
    assert [read[i] for i in range(len(read))] == [loaded[i] for i in range(len(loaded))]
    ids = np.array([2, 0, 2, 1])
    assert read.dates_of(ids) == loaded.dates_of(ids)
    for i in range(len(read)):
        file = read[i].source.file
        key = PassageKey(file_key(file), int(whole.rows[i, 2]), 0)
        assert read.article(key) == loaded.article(key) and read[i] in read.article(key)


def test_npy_column_reads_rows_as_numpy_indexes_them(tmp_path: Path) -> None:
    """Slices, integer arrays and runs of ranges give numpy's rows; a row out of range or an
    array stored in Fortran order is refused."""
    values = np.arange(60, dtype=np.uint32).reshape(12, 5)
    np.save(tmp_path / "rows.npy", values)
    column = NpyColumn(tmp_path / "rows.npy")
    assert len(column) == 12
    for where in (slice(0, 12), slice(3, 4), slice(10, 99), slice(-1, None), slice(5, 2)):
        assert np.array_equal(column[where], values[where])
    picks = np.array([11, 0, 4, 4])
    assert np.array_equal(column[picks], values[picks])
    out = np.empty((6, 5), dtype=np.uint32)
    column.read_ranges([9, 2, 7], [2, 0, 4], out)
    assert np.array_equal(out, np.concatenate([values[9:11], values[7:11]]))
    with pytest.raises(IndexError):
        column[np.array([12])]
    np.save(tmp_path / "fortran.npy", np.asfortranarray(values))
    with pytest.raises(ValueError, match="C order"):
        NpyColumn(tmp_path / "fortran.npy")


def test_npy_column_reads_a_few_rows_as_bytes_and_values(tmp_path: Path) -> None:
    """`raw` and `values` (what passages and their texts are read with) give the rows numpy
    gives; a row out of range is refused, and a file cut short after opening is an error."""
    values = np.arange(60, dtype=np.uint32).reshape(12, 5)
    np.save(tmp_path / "rows.npy", values)
    column = NpyColumn(tmp_path / "rows.npy")
    for start, count in ((0, 1), (11, 1), (3, 4), (12, 0)):
        assert column.raw(start, count) == values[start : start + count].tobytes()
        assert column.values(start, count) == values[start : start + count].tolist()
    dates = np.array([-1, 19_000, 7], dtype=np.int32)
    np.save(tmp_path / "dates.npy", dates)
    assert NpyColumn(tmp_path / "dates.npy").values(1, 2) == [19_000, 7]
    for start, count in ((12, 1), (11, 2), (-1, 1)):
        with pytest.raises(IndexError, match="out of range"):
            column.raw(start, count)
    with open(tmp_path / "rows.npy", "r+b") as handle:  # cut short under the open column
        handle.truncate(column.offset + 5 * column.row_bytes)
    with pytest.raises(OSError, match="ended early"):
        column.raw(4, 2)


def _rss_file_kb() -> int:
    """This process's resident pages of mapped files (kB), from /proc/self/status."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return int(next(line for line in lines if line.startswith("RssFile:")).split()[1])


def test_npy_column_maps_rows_and_drops_their_pages(tmp_path: Path) -> None:
    """A column read in place is the saved array; its touched pages count towards resident
    memory until `drop`, after which they are gone from it and the rows read the same."""
    values = np.arange(4 << 20, dtype=np.uint32)  # 16 MB
    np.save(tmp_path / "docs.npy", values)
    column = NpyColumn(tmp_path / "docs.npy")
    mapped = column.mapped()
    assert column.mapped() is mapped and not mapped.flags.writeable
    before = _rss_file_kb()
    assert np.array_equal(mapped, values)  # every page touched
    touched = _rss_file_kb() - before
    assert touched > 12_000
    column.drop()
    assert _rss_file_kb() < before + touched // 4
    assert np.array_equal(mapped[::4096], values[::4096])  # read again from the OS cache
    np.save(tmp_path / "empty.npy", np.zeros(0, dtype=np.uint8))
    empty = NpyColumn(tmp_path / "empty.npy")
    assert len(empty.mapped()) == 0
    empty.drop()


def test_field_drops_its_mapped_postings_past_a_budget(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Questions' postings are read in place; once the postings asked for pass `DROP_AFTER`
    bytes, the mapped columns' pages are due to be dropped: by `drop_pages` (the searcher's
    helper), else by the next `gather`. Ranking is the same throughout; a searcher whose
    passages are split between two threads has its helper drop them after the question."""
    root = tmp_path / "index"
    tokenizer = Tokenizer()
    build_index(archive, root, tokenizer)
    searcher = Searcher(open_index(root), tokenizer)
    field = searcher.index.fields["bigrams"]
    query = searcher.query("长江大桥全长多少米")
    dropped: list[Path] = []
    threads: list[str] = []  # where each drop ran
    drop = NpyColumn.drop

    def counted(column: NpyColumn) -> None:
        dropped.append(column.path)
        threads.append(threading.current_thread().name)
        drop(column)

    monkeypatch.setattr(NpyColumn, "drop", counted)
    first = field.gather(query.bigrams)
    size = int((first.ends - first.starts).sum()) * 5  # bytes: a uint32 id and a uint8 tf
    assert size > 0 and isinstance(field.docs, NpyColumn)
    assert first.docs is field.docs.mapped()  # in place: nothing copied
    expected = [a.tolist() for a in field.top(first, 5)]
    monkeypatch.setattr(index_module, "DROP_AFTER", 2 * size + size // 2)
    field.gather(query.bigrams)  # two questions' postings: within the budget
    assert not field.pages_due
    field.gather(query.bigrams)  # three: past it
    assert field.pages_due and dropped == []
    field.drop_pages()
    assert len(dropped) == 4 and not field.pages_due  # docs, tfs and the two block arrays
    field.drop_pages()
    assert len(dropped) == 4  # nothing more was due
    for _ in range(3):
        assert [a.tolist() for a in field.top(field.gather(query.bigrams), 5)] == expected
    assert field.pages_due and len(dropped) == 4
    field.gather(query.bigrams)  # a drop left due is taken by the next question
    assert len(dropped) == 8 and not field.pages_due
    monkeypatch.setattr(search_module, "SPLIT_FROM", 0)  # rank halves on two threads
    monkeypatch.setattr(index_module, "DROP_AFTER", 0)  # every question's pages due
    field.drop_pages()
    before = len(dropped)
    for _ in range(3):
        assert searcher.search(query, top_k=3)
        search_module._HELPER.pool.submit(lambda: None).result()  # its jobs run in order
        assert not field.pages_due
    helper = [thread for thread in threads[before:] if thread.startswith("field")]
    assert len(helper) == 3 * 8  # both fields' four columns, each question, on the helper


def test_blocks_read_for_a_query_equal_the_saved_ones(archive: Path, tmp_path: Path) -> None:
    """An opened field reads a query's blocks in place (the block arrays mapped, as the
    postings): each term's blocks are the saved ones, and its top k is that of the arrays
    loaded whole."""
    root = tmp_path / "index"
    tokenizer = Tokenizer()
    build_index(archive, root, tokenizer)
    index = open_index(root)
    folder = root / index.segments[0].info.name
    query = Searcher(index, tokenizer).query("长江大桥全长多少米，女排夺冠")
    for name, tokens in (("words", query.words), ("bigrams", query.bigrams)):
        opened = index.fields[name]
        assert isinstance(opened.block_max_tf, NpyColumn)
        whole = Field(
            FieldArrays(**{n: np.load(folder / f"{name}.{n}.npy") for n in FieldArrays.__slots__}),
            opened.params,
        )
        postings = opened.gather(tokens)
        assert len(postings) >= 2
        blocks = opened.blocks(postings.terms)
        assert blocks is not None
        first, max_tf, min_len = blocks
        for i, term in enumerate(postings.terms.tolist()):
            saved = slice(int(whole.block_offsets[term]), int(whole.block_offsets[term + 1]))
            end = first[i] + saved.stop - saved.start
            assert max_tf[first[i] : end].tolist() == whole.block_max_tf[saved].tolist()
            assert min_len[first[i] : end].tolist() == whole.block_min_len[saved].tolist()
        got = [a.tolist() for a in opened.top(postings, 5)]
        assert got == [a.tolist() for a in whole.top(whole.gather(tokens), 5)]
