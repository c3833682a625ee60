"""Pipeline step "saved index → opened index": the passage table, segments and commits read back.

An index folder holds immutable segments (`seg-<ns>-<pid>/`: each field's `FieldArrays` and a
`PassageArrays` table) and commit points (`commit-<ns>-<pid>.json`, an `IndexManifest` naming
the segments and their deletion masks). `CURRENT` names the commit in use; it is switched with
an atomic rename after everything it names is written (`retrieval.segments`, which writes,
updates and merges). `open_index` opens the commit `CURRENT` names: one segment without
deletions is scored from its saved weights (`index.Field`), several through `live.LiveField`,
which combines the BM25 statistics over the live passages. A reader gets one commit whole.
"""

from __future__ import annotations

import bisect
import logging
from array import array
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval.errors import IndexBuildError, IndexCorruptError, IndexMissingError
from retrieval.ids import PassageKey, file_key
from retrieval.index import FIELDS, Field, FieldArrays, NpyColumn, StringTable, load_arrays
from retrieval.live import LiveField
from retrieval.manifest import Expected, IndexManifest, SegmentInfo
from retrieval.models import Passage, Source, parse_passage_id, passage_id

if TYPE_CHECKING:
    pass

__all__ = [
    "Index",
    "PassageArrays",
    "PassageWriter",
    "Segment",
    "current_commit",
    "open_index",
]

log = logging.getLogger(__name__)

# Columns of the per-passage table: ids into files/titles, then positions in the source.
_COLUMNS = ("file", "title", "article", "number", "paragraph", "start", "end")
_EPOCH = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class PassageArrays:
    """The passage table's arrays, saved as `passages.<name>.npy` (texts in one `.bin` file).

    Row i of `rows` is passage i's `_COLUMNS`; its text is `text[text_offsets[i]:...[i + 1]]`,
    its file `files` entry `rows[i, 0]` and its title `titles` entry `rows[i, 1] - 1` (0: none).
    `file_keys[i]` finds a short id's passages without hashing every file name at query time;
    `dates[i]` is read once at build time from the raw page (`dates.page_date`). Opened, the
    per-passage `rows`, `text_offsets` and `dates` are read by `pread` (`NpyColumn`): mapped,
    the passages a thousand questions show touch most of their pages, 39 MB resident at a
    million passages (benchmarks/RESULTS.md); the rest is mapped.
    """

    rows: np.ndarray | NpyColumn  # uint32, (passages, len(_COLUMNS))
    text_offsets: np.ndarray | NpyColumn  # int64, passages + 1, into passages.text.bin
    files: np.ndarray  # uint8 UTF-8 blob of the file names
    file_offsets: np.ndarray  # int64
    titles: np.ndarray  # uint8 UTF-8 blob of the article titles
    title_offsets: np.ndarray  # int64
    file_keys: np.ndarray  # uint64, passages: `ids.file_key` of the passage's file
    dates: np.ndarray | NpyColumn  # int32, passages: page date in days since 1970-01-01, -1 none

    def save(self, folder: Path) -> None:
        """Write each array as `passages.<name>.npy`."""
        for item in fields(self):
            values = np.ascontiguousarray(getattr(self, item.name))
            np.save(folder / f"passages.{item.name}.npy", values)

    @classmethod
    def open(cls, folder: Path) -> PassageArrays:
        """Open the saved arrays: the per-passage ones read by slices, the rest mapped."""
        names = [item.name for item in fields(cls) if item.name not in _READ_ROWS]
        mapped = load_arrays(folder, "passages", names)
        try:
            rows, text_offsets, dates = (
                NpyColumn(folder / f"passages.{name}.npy") for name in _READ_ROWS
            )
        except (OSError, ValueError, EOFError) as error:
            raise IndexCorruptError(
                f"Index passages are damaged ({error}). Run `archive-bot index` to rebuild."
            ) from error
        return cls(rows=rows, text_offsets=text_offsets, dates=dates, **mapped)


_READ_ROWS = ("rows", "text_offsets", "dates")  # per passage, read by `pread` (not mapped)


class PassageTable:
    """Per-passage sources and texts, read by slices (`PassageArrays.open`)."""

    def __init__(self, arrays: PassageArrays, texts: NpyColumn | np.ndarray) -> None:
        self._texts = StringTable(texts, arrays.text_offsets)
        self._files = StringTable(arrays.files, arrays.file_offsets)
        self._titles = StringTable(arrays.titles, arrays.title_offsets)
        self._rows = arrays.rows
        self._keys = np.asarray(arrays.file_keys).view(np.ndarray)
        self._dates = arrays.dates

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Passage:
        rows, dates = self._rows, self._dates
        if isinstance(rows, NpyColumn) and isinstance(dates, NpyColumn):  # as bytes (`raw`)
            ((file, title, article, number, paragraph, start, end),) = rows.values(i, 1)
            (days,) = dates.values(i, 1)
        else:
            file, title, article, number, paragraph, start, end = rows[i : i + 1][0].tolist()
            days = int(dates[i : i + 1][0])
        path = self._files[file]
        title_text = self._titles[title - 1] if title else None
        day = day_of(days)
        return Passage(
            passage_id=passage_id(path, article, number),
            text=self._texts[i],
            source=Source(path, title_text, paragraph, start, end, day),
        )

    def dates_of(self, ids: np.ndarray) -> list[date | None]:
        """The page dates of some passages (by row), None where unknown."""
        return [day_of(days) for days in self._dates[ids].tolist()]

    def article(self, key: PassageKey) -> list[Passage]:
        """Every passage of the article a short id's key names, in order; [] if none."""
        return [self[int(i)] for i in self.article_rows(key)]

    def article_rows(self, key: PassageKey, deleted: np.ndarray | None = None) -> np.ndarray:
        """The rows of an article's passages in order, those `deleted` marks left out."""
        rows = np.flatnonzero(self._keys == np.uint64(key.file_key))
        table = self._rows[rows]
        keep = table[:, 2] == key.article
        if deleted is not None:
            keep &= ~deleted[rows]
        return rows[keep][np.argsort(table[keep, 3], kind="stable")]


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


class Segment:
    """One opened segment: its fields' arrays, its passages and its deletion mask."""

    def __init__(self, folder: Path, info: SegmentInfo) -> None:
        self.info = info
        self.fields = {name: FieldArrays.open(folder, name) for name in FIELDS}
        table = PassageArrays.open(folder)
        texts = _load_blob(folder / "passages.text.bin", int(table.text_offsets[-1:][0]))
        self.passages = PassageTable(table, texts)
        self.deleted = None if info.deletions is None else _load_mask(folder / info.deletions)
        sizes = {len(arrays.lengths) for arrays in self.fields.values()} | {len(self.passages)}
        if sizes != {info.passages} or (
            self.deleted is not None and len(self.deleted) != info.passages
        ):
            raise IndexCorruptError("Index fields and passages disagree; rebuild the index.")

    @staticmethod
    def mask(folder: Path, info: SegmentInfo) -> np.ndarray:
        """A writable copy of a segment's deletion mask (all False when it has none)."""
        if info.deletions is None:
            return np.zeros(info.passages, dtype=bool)
        return _load_mask(folder / info.deletions).copy()


class SegmentedPassages:
    """The passages of several segments under global ids (segment base + local id).

    An article is looked up in every segment, live passages only: after its file changed, the
    old passages are deleted in one segment and the new ones live in another.
    """

    def __init__(self, tables: list[PassageTable], deleted: list[np.ndarray | None]) -> None:
        self._tables = tables
        self._deleted = deleted
        self._bases = np.cumsum([0] + [len(table) for table in tables]).tolist()

    def dates_of(self, ids: np.ndarray) -> list[date | None]:
        """The page dates of some passages (by global id), None where unknown."""
        ids = np.asarray(ids, dtype=np.int64)
        parts = np.searchsorted(np.asarray(self._bases), ids, "right") - 1
        days: list[date | None] = [None] * len(ids)
        for part in sorted(set(parts.tolist())):
            where = np.flatnonzero(parts == part)
            found = self._tables[part].dates_of(ids[where] - self._bases[part])
            for i, day in zip(where.tolist(), found, strict=True):
                days[i] = day
        return days

    def article(self, key: PassageKey) -> list[Passage]:
        """Every live passage of the article a short id's key names, in order; [] if none."""
        for table, deleted in zip(self._tables, self._deleted, strict=True):
            rows = table.article_rows(key, deleted)
            if len(rows):  # a file's live passages are all in one segment
                return [table[int(i)] for i in rows]
        return []

    def __len__(self) -> int:
        return int(self._bases[-1])

    def __getitem__(self, i: int) -> Passage:
        part = bisect.bisect_right(self._bases, i) - 1
        return self._tables[part][i - self._bases[part]]


class Index:
    """An opened commit: its manifest, its fields over all segments and its passages."""

    def __init__(self, root: Path, commit: Path) -> None:
        self.folder = root
        self.commit = commit
        self.manifest = IndexManifest.read(commit)
        params = self.manifest.bm25
        segments = [Segment(root / info.name, info) for info in self.manifest.segments]
        if not segments:
            raise IndexCorruptError("Index commit names no segments; rebuild the index.")
        self.segments = segments
        if len(segments) == 1 and segments[0].deleted is None:  # as built: weights saved
            self.fields = {
                name: Field(arrays, params) for name, arrays in segments[0].fields.items()
            }
        else:
            masks = [segment.deleted for segment in segments]
            self.fields = {
                name: LiveField([s.fields[name] for s in segments], masks, params)
                for name in FIELDS
            }
        self.passages = SegmentedPassages(
            [segment.passages for segment in segments], [segment.deleted for segment in segments]
        )


def _load_mask(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=bool)
    except (OSError, ValueError, EOFError) as error:
        raise IndexCorruptError(f"Index deletions are damaged ({error}); rebuild it.") from error


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


def current_commit(index_root: Path) -> Path:
    """The commit file `CURRENT` names; IndexMissingError if none.

    `CURRENT` is read again when the commit it named is gone: an update switched it and
    removed the old commit between the two reads.
    """
    for _ in range(5):
        name = _pointer(index_root)
        if name.startswith("commit-") and "/" not in name and (index_root / name).is_file():
            return index_root / name
        if _pointer(index_root) == name:
            break
    raise IndexCorruptError(
        f"Index at {index_root} points to a missing or older-format commit ({name!r}); "
        "run `archive-bot index --full` to rebuild it."
    )


def _pointer(index_root: Path) -> str:
    try:
        return (index_root / "CURRENT").read_text("utf-8").strip()
    except FileNotFoundError as error:
        raise IndexMissingError(
            f"No index at {index_root}. Run `archive-bot index` to build it."
        ) from error


def open_index(index_root: Path, *, expected: Expected | None = None, attempts: int = 5) -> Index:
    """Open the current commit of an index folder, checked against `expected` if given.

    An update or merge that finishes while the index is being opened may remove files of the
    commit being read; the opening then starts again from the commit `CURRENT` names now.

    Raises:
        IndexMissingError: there is no index. IndexCorruptError: it cannot be opened.
        IndexStaleError: it opens, but was built from other inputs than `expected`.
    """
    index = _open_current(index_root, attempts)
    if expected is not None:
        index.manifest.check(expected)
    return index


def _open_current(index_root: Path, attempts: int) -> Index:
    commit = current_commit(index_root)
    for _ in range(attempts - 1):
        try:
            return Index(index_root, commit)
        except IndexCorruptError:
            latest = current_commit(index_root)
            if latest == commit:
                raise
            commit = latest
    return Index(index_root, commit)
