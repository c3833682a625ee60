"""Pipeline step "archive → saved index": runs read → clean → articles → passages → tokens →
BM25 for a whole archive, writes it atomically, and opens it again.

A build lists the archive once (`archive.list_archive`); that listing feeds the chunks, the
progress total and the fingerprint the `IndexManifest` records. Field arrays are built by
`retrieval.fieldbuild`; the passage table here (`PassageArrays`).

An index folder holds generations: `CURRENT` names the complete one, each generation is a
folder written in full (meta.json last) before `CURRENT` is switched with an atomic rename. A
build killed at any point leaves the previous generation in use; two builders take a file lock
so they never write at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from datetime import date
from pathlib import Path

import numpy as np
from filelock import FileLock

from retrieval.archive import list_archive
from retrieval.build import Progress, chunks_of, index_text, passages_of
from retrieval.errors import ArchiveError, IndexBuildError, IndexCorruptError, IndexMissingError
from retrieval.fieldbuild import FieldBuilder
from retrieval.ids import PassageKey, file_key
from retrieval.index import (
    FIELDS,
    BM25Params,
    Field,
    FieldArrays,
    NpyColumn,
    StringTable,
    load_arrays,
)
from retrieval.manifest import FORMAT_VERSION, Expected, IndexManifest, fingerprint
from retrieval.models import Passage, Source, parse_passage_id, passage_id
from retrieval.passages import DEFAULT_MAX_CHARS
from retrieval.tokenize import Tokenizer

__all__ = ["Index", "Progress", "build_index", "index_text", "open_index", "passages_of"]

log = logging.getLogger(__name__)

# Columns of the per-passage table: ids into files/titles, then positions in the source.
_COLUMNS = ("file", "title", "article", "number", "paragraph", "start", "end")
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What a build made, for `archive-bot index` to print."""

    files: int
    skipped: tuple[str, ...]
    articles: int
    passages: int
    tokens: int
    seconds: float


@dataclass(frozen=True, slots=True)
class PassageArrays:
    """The passage table's arrays, saved as `passages.<name>.npy` (texts in one `.bin` file).

    Row i of `rows` is passage i's `_COLUMNS`; its text is `text[text_offsets[i]:...[i + 1]]`,
    its file `files` entry `rows[i, 0]` and its title `titles` entry `rows[i, 1] - 1` (0: none).
    `file_keys[i]` finds a short id's passages without hashing every file name at query time;
    `dates[i]` is read once at build time from the raw page (`dates.page_date`).
    """

    rows: np.ndarray  # uint32, (passages, len(_COLUMNS))
    text_offsets: np.ndarray  # int64, passages + 1, into passages.text.bin
    files: np.ndarray  # uint8 UTF-8 blob of the file names
    file_offsets: np.ndarray  # int64
    titles: np.ndarray  # uint8 UTF-8 blob of the article titles
    title_offsets: np.ndarray  # int64
    file_keys: np.ndarray  # uint64, passages: `ids.file_key` of the passage's file
    dates: np.ndarray  # int32, passages: the page's date in days since 1970-01-01, -1 none

    def save(self, folder: Path) -> None:
        """Write each array as `passages.<name>.npy`."""
        for item in fields(self):
            values = np.ascontiguousarray(getattr(self, item.name))
            np.save(folder / f"passages.{item.name}.npy", values)

    @classmethod
    def open(cls, folder: Path) -> PassageArrays:
        """Memory-map the saved arrays."""
        return cls(**load_arrays(folder, "passages", [item.name for item in fields(cls)]))


class PassageTable:
    """Per-passage sources (memory-mapped) and texts (read by slices)."""

    def __init__(self, arrays: PassageArrays, texts: NpyColumn | np.ndarray) -> None:
        self._texts = StringTable(texts, arrays.text_offsets)
        self._files = StringTable(arrays.files, arrays.file_offsets)
        self._titles = StringTable(arrays.titles, arrays.title_offsets)
        self._rows = np.asarray(arrays.rows).view(np.ndarray)  # plain view: fast rows
        self._keys = np.asarray(arrays.file_keys).view(np.ndarray)
        self._dates = np.asarray(arrays.dates).view(np.ndarray)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Passage:
        file, title, article, number, paragraph, start, end = self._rows[i].tolist()
        path = self._files[file]
        source = Source(path, self._titles[title - 1] if title else None, paragraph, start, end)
        return Passage(
            passage_id=passage_id(path, article, number),
            text=self._texts[i],
            source=replace(source, date=day_of(int(self._dates[i]))),
        )

    def dates_of(self, ids: np.ndarray) -> list[date | None]:
        """The page dates of some passages (by row), None where unknown."""
        return [day_of(days) for days in self._dates[ids].tolist()]

    def article(self, key: PassageKey) -> list[Passage]:
        """Every passage of the article a short id's key names, in order; [] if none."""
        rows = np.flatnonzero(self._keys == np.uint64(key.file_key))
        rows = rows[self._rows[rows, 2] == key.article]
        return [self[int(i)] for i in rows[np.argsort(self._rows[rows, 3], kind="stable")]]


class PassageWriter:
    """Writes a passage table incrementally: texts appended to one file, sources as rows."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._texts = open(folder / "passages.text.bin", "wb")  # noqa: SIM115 - finish() closes
        self._offsets = array("q", [0])
        self._rows = array("I")
        self._files: dict[str, int] = {}
        self._titles: dict[str, int] = {}  # id 0 means no title
        self._keys = array("Q")
        self._dates = array("i")
        self._key_files: dict[int, str] = {}  # file key → the one file that has it

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def add(self, passages: list[Passage]) -> None:
        """Append passages in order."""
        for passage in passages:
            data = passage.text.encode()
            self._texts.write(data)
            self._offsets.append(self._offsets[-1] + len(data))
            source = passage.source
            title = (
                self._titles.setdefault(source.title, len(self._titles) + 1) if source.title else 0
            )
            if source.file not in self._files:
                self._new_file(source.file)
            file = self._files[source.file]
            _, article, number = parse_passage_id(passage.passage_id)
            row = (file, title, article, number, source.paragraph, source.start, source.end)
            self._rows.extend(row)
            self._keys.append(file_key(source.file))
            self._dates.append(days_of(source.date))

    def _new_file(self, name: str) -> None:
        """Number a file; refuse one whose short-id key another file has already."""
        key = file_key(name)
        other = self._key_files.setdefault(key, name)
        if other != name:
            raise IndexBuildError(
                f"{other!r} and {name!r} share the passage-id key {key:012x}, so links to "
                "their passages could open the wrong one. Rename one of them and rebuild."
            )
        self._files[name] = len(self._files)

    def finish(self) -> int:
        """Write the table's arrays; returns the number of articles."""
        self._texts.close()
        rows = np.frombuffer(self._rows, dtype=np.uint32).reshape(-1, len(_COLUMNS))
        offsets = np.frombuffer(self._offsets, dtype=np.int64)
        files, file_offsets = StringTable.encode(list(self._files))
        titles, title_offsets = StringTable.encode(list(self._titles))
        keys = np.frombuffer(self._keys, dtype=np.uint64)
        dates = np.frombuffer(self._dates, dtype=np.int32)
        arrays = PassageArrays(
            rows, offsets, files, file_offsets, titles, title_offsets, keys, dates
        )
        arrays.save(self._folder)
        return int(np.count_nonzero(rows[:, 3] == 0))  # every article has one passage 0


class Index:
    """An opened index: its manifest, its fields and its passages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest = IndexManifest.read(folder)
        params = self.manifest.bm25
        self.fields: dict[str, Field] = {
            name: Field(FieldArrays.open(folder, name), params) for name in FIELDS
        }
        table = PassageArrays.open(folder)
        texts = _load_blob(folder / "passages.text.bin", int(table.text_offsets[-1]))
        self.passages = PassageTable(table, texts)
        if any(field.size != len(self.passages) for field in self.fields.values()):
            raise IndexCorruptError("Index fields and passages disagree; rebuild the index.")


def days_of(day: date | None) -> int:
    """A date as days since 1970-01-01 (the `dates` column), -1 for None."""
    return -1 if day is None else day.toordinal() - _EPOCH


def day_of(days: int) -> date | None:
    """The date a `dates` entry holds, None for -1."""
    return None if days < 0 else date.fromordinal(days + _EPOCH)


def _load_blob(path: Path, size: int) -> NpyColumn | np.ndarray:
    # Read by slices, not mapped: a mapping faults in 64 KB around every passage shown, and
    # those pages stay in the process's resident memory (90 MB of 129 after 1,000 questions at
    # 100k passages); read pages live in the OS cache instead.
    try:
        if path.stat().st_size != size:
            raise OSError(f"{path.name} has {path.stat().st_size} bytes, expected {size}")
        return NpyColumn.of_bytes(path) if size else np.zeros(0, np.uint8)
    except OSError as error:
        raise IndexCorruptError(f"Index texts are damaged ({error}); rebuild it.") from error


def current_generation(index_root: Path) -> Path:
    """The complete generation folder `CURRENT` points to; IndexMissingError if none."""
    try:
        name = (index_root / "CURRENT").read_text("utf-8").strip()
    except FileNotFoundError as error:
        raise IndexMissingError(
            f"No index at {index_root}. Run `archive-bot index` to build it."
        ) from error
    if not name or "/" in name or not (index_root / name).is_dir():
        raise IndexCorruptError(f"Index at {index_root} points to a missing generation; rebuild.")
    return index_root / name


def open_index(index_root: Path, *, expected: Expected | None = None, attempts: int = 5) -> Index:
    """Open the current generation of an index folder, checked against `expected` if given.

    A build that finishes while the index is being opened removes the generation being read;
    the opening then starts again from the generation `CURRENT` names now.

    Raises:
        IndexMissingError: there is no index. IndexCorruptError: it cannot be opened.
        IndexStaleError: it opens, but was built from other inputs than `expected`.
    """
    index = _open_current(index_root, attempts)
    if expected is not None:
        index.manifest.check(expected)
    return index


def _open_current(index_root: Path, attempts: int) -> Index:
    generation = current_generation(index_root)
    for _ in range(attempts - 1):
        try:
            return Index(generation)
        except IndexCorruptError:
            latest = current_generation(index_root)
            if latest == generation:
                raise
            generation = latest
    return Index(generation)


def build_index(
    archive_dir: Path,
    index_root: Path,
    tokenizer: Tokenizer,
    *,
    params: BM25Params | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress: Progress | None = None,
) -> BuildStats:
    """Build the index of an archive into a new generation and make it current."""
    index_root.mkdir(parents=True, exist_ok=True)
    with FileLock(index_root / "build.lock"):
        started = time.perf_counter()
        generation = index_root / f"gen-{time.time_ns()}-{os.getpid()}"
        generation.mkdir()
        try:
            stats = _write_generation(
                archive_dir, generation, tokenizer, params or BM25Params(), max_chars, progress
            )
        except BaseException:
            shutil.rmtree(generation, ignore_errors=True)
            raise
        _switch_current(index_root, generation)
    return replace(stats, seconds=time.perf_counter() - started)


def _write_generation(
    archive_dir: Path,
    folder: Path,
    tokenizer: Tokenizer,
    params: BM25Params,
    max_chars: int,
    progress: Progress | None,
) -> BuildStats:
    if not archive_dir.is_dir():
        raise ArchiveError(
            f"Archive folder {archive_dir} does not exist. Check ARCHIVE_BOT_ARCHIVE_DIR."
        )
    listing = list_archive(archive_dir)  # before reading: a file changed meanwhile is stale
    table = PassageWriter(folder)
    words, bigrams = FieldBuilder(folder / "words.spill"), FieldBuilder(folder / "bigrams.spill")
    vocab: dict[str, int] = {}
    files, skipped = 0, list[str]()
    for chunk in chunks_of(listing, tokenizer, max_chars=max_chars):
        base = np.uint64(len(table))
        table.add(chunk.passages)
        remap = np.array([vocab.setdefault(w, len(vocab)) for w in chunk.words], dtype=np.uint64)
        terms, docs, tfs = chunk.word_postings
        words.add(remap[terms.astype(np.int64)], docs + base, tfs, chunk.word_lengths)
        keys, docs, tfs = chunk.bigram_postings
        bigrams.add(keys, docs + base, tfs, chunk.bigram_lengths)
        for item in chunk.skipped:
            log.warning("skipped %s: %s", item.path, item.reason)
        files, skipped = files + chunk.documents, skipped + [s.path for s in chunk.skipped]
        if progress:
            progress(chunk.file_bytes)
    if not len(table):
        raise ArchiveError(
            f"No text to index in {archive_dir} ({len(skipped)} skipped). "
            "Check ARCHIVE_BOT_ARCHIVE_DIR."
        )
    articles = table.finish()
    words.finish(params, list(vocab)).save(folder, "words")
    bigrams.finish(params).save(folder, "bigrams")
    stats = BuildStats(files, tuple(skipped), articles, len(table), words.tokens, 0.0)
    manifest = IndexManifest(
        format_version=FORMAT_VERSION,
        archive=str(archive_dir.resolve()),
        fingerprint=fingerprint(listing),
        tokenizer=tokenizer.describe(),
        bm25=params,
        max_chars=max_chars,
        files=stats.files,
        articles=stats.articles,
        passages=stats.passages,
        tokens=stats.tokens,
        skipped=stats.skipped,
    )
    manifest.write(folder)
    return stats


def _switch_current(index_root: Path, generation: Path) -> None:
    pointer = index_root / f"CURRENT.{os.getpid()}.tmp"
    pointer.write_text(generation.name, "utf-8")
    with open(pointer, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, index_root / "CURRENT")
    for old in _stale_generations(index_root, keep=generation.name):
        shutil.rmtree(old, ignore_errors=True)


def _stale_generations(index_root: Path, *, keep: str) -> Iterator[Path]:
    # Generations other than the current one are finished builds replaced since, or the
    # leftovers of a build that was killed; the lock is held, so none is being written.
    for path in index_root.glob("gen-*"):
        if path.name != keep and path.is_dir():
            yield path
