"""The index manifest: written and read typed, and the one staleness check with its reasons."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from bot.engine import open_searcher
from bot.settings import Settings
from retrieval.errors import IndexBuildError, IndexCorruptError, IndexStaleError, RetrievalError
from retrieval.fieldbuild import DOC_MASK, FieldBuilder, build_field
from retrieval.index import BM25Params
from retrieval.manifest import FORMAT_VERSION, Expected, IndexManifest
from retrieval.segments import build_index
from retrieval.store import current_commit, open_index
from retrieval.tokenize import Tokenizer
from tests.conftest import SEEDS

TEXT = "长江大桥通车\n\n本报讯 昨日,新建的长江大桥正式通车,全长1200米。\n"


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "page1.txt").write_text(TEXT, "utf-8")
    return folder


def test_manifest_round_trip_is_typed(archive: Path, tmp_path: Path) -> None:
    tokenizer = Tokenizer()
    stats = build_index(archive, tmp_path / "index", tokenizer, max_chars=500)
    manifest = open_index(tmp_path / "index").manifest
    assert manifest == IndexManifest.read(current_commit(tmp_path / "index"))
    assert manifest.format_version == FORMAT_VERSION and manifest.max_chars == 500
    assert manifest.tokenizer == tokenizer.describe() and manifest.bm25 == BM25Params()
    assert (manifest.files, manifest.passages, manifest.tokens) == (
        1,
        stats.passages,
        stats.tokens,
    )
    assert manifest.archive == str(archive.resolve()) and manifest.skipped == ()


def test_a_fitting_index_passes_the_check(archive: Path, tmp_path: Path) -> None:
    build_index(archive, tmp_path / "index", Tokenizer())
    open_index(tmp_path / "index", expected=Expected.of(archive, Tokenizer()))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("archive", "the archive changed"),
        ("tokenizer", "the tokenizer or its dictionaries changed"),
        ("bm25", "the BM25 parameters changed"),
        ("max_chars", "the passage size changed (1000 → 300 characters)"),
    ],
)
def test_a_stale_index_names_what_differs(
    archive: Path, tmp_path: Path, change: str, reason: str
) -> None:
    build_index(archive, tmp_path / "index", Tokenizer())
    expected = Expected.of(archive, Tokenizer())
    if change == "archive":
        (archive / "page2.txt").write_text("体育新闻\n\n女排夺冠。\n", "utf-8")
        expected = Expected.of(archive, Tokenizer())
    elif change == "tokenizer":
        expected = Expected.of(archive, Tokenizer(stopwords=["通车"]))
    elif change == "bm25":
        expected = replace(expected, bm25=BM25Params(k1=1.2))
    else:
        expected = replace(expected, max_chars=300)
    with pytest.raises(IndexStaleError, match="rebuild") as raised:
        open_index(tmp_path / "index", expected=expected)
    assert reason in str(raised.value) and isinstance(raised.value, RetrievalError)


def test_several_differences_are_all_named(archive: Path, tmp_path: Path) -> None:
    build_index(archive, tmp_path / "index", Tokenizer())
    expected = replace(Expected.of(archive, Tokenizer()), bm25=BM25Params(b=0.5), max_chars=9)
    with pytest.raises(IndexStaleError, match=r"BM25 parameters.*; the passage size"):
        open_index(tmp_path / "index").manifest.check(expected)


def test_incomplete_manifest_is_corrupt(archive: Path, tmp_path: Path) -> None:
    build_index(archive, tmp_path / "index", Tokenizer())
    meta = current_commit(tmp_path / "index")
    meta.write_text(meta.read_text("utf-8").replace('"max_chars"', '"max_chars_"'), "utf-8")
    with pytest.raises(IndexCorruptError, match=r"incomplete.*rebuild"):
        open_index(tmp_path / "index")


def test_engine_rebuilds_when_the_passage_size_changes(
    archive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(archive_dir=archive, index_dir=tmp_path / "index")
    open_searcher(settings)
    caplog.set_level(logging.INFO, logger="bot.engine")
    with mock.patch("bot.engine.DEFAULT_MAX_CHARS", 300):  # as if the default were changed
        searcher = open_searcher(settings)
    assert "the passage size changed (1000 → 300 characters)" in caplog.text
    assert searcher.index.manifest.max_chars == 300


def test_engine_keeps_an_index_that_fits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(archive_dir=SEEDS, index_dir=tmp_path / "index")
    first = open_searcher(settings).index.folder
    caplog.set_level(logging.INFO, logger="bot.engine")
    assert open_searcher(settings).index.folder == first
    assert "Building" not in caplog.text


def test_too_many_passages_is_a_build_error_that_says_what_to_do(tmp_path: Path) -> None:
    builder = FieldBuilder(tmp_path / "spill")
    docs = np.array([DOC_MASK + 1], dtype=np.uint64)
    with pytest.raises(IndexBuildError, match="Split it into several archives"):
        builder.add(np.zeros(1, np.uint64), docs, np.ones(1, np.int64), np.ones(1, np.int64))


def test_a_hash_collision_is_a_build_error(tmp_path: Path) -> None:
    with (
        mock.patch("retrieval.fieldbuild.term_hash", return_value=7),  # every word collides
        pytest.raises(IndexBuildError, match="64-bit hash"),
    ):
        build_field([["a", "b"]], BM25Params())
