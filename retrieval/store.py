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
from pathlib import Path

import numpy as np

from retrieval.errors import IndexCorruptError, IndexMissingError
from retrieval.index import FIELDS, Field, FieldArrays, StringTable, load_arrays
from retrieval.live import LiveField
from retrieval.manifest import Expected, IndexManifest, SegmentInfo
from retrieval.models import Passage, Source, parse_passage_id, passage_id

__all__ = ["Index", "PassageArrays", "PassageWriter", "Segment", "current_commit", "open_index"]

log = logging.getLogger(__name__)

# Columns of the per-passage table: ids into files/titles, then positions in the source.
_COLUMNS = ("file", "title", "article", "number", "paragraph", "start", "end")


@dataclass(frozen=True, slots=True)
class PassageArrays:
    """The passage table's arrays, saved as `passages.<name>.npy` (texts in one `.bin` file).

    Row i of `rows` is passage i's `_COLUMNS`; its text is `text[text_offsets[i]:...[i + 1]]`,
    its file `files` entry `rows[i, 0]` and its title `titles` entry `rows[i, 1] - 1` (0: none).
    """

    rows: np.ndarray  # uint32, (passages, len(_COLUMNS))
    text_offsets: np.ndarray  # int64, passages + 1, into passages.text.bin
    files: np.ndarray  # uint8 UTF-8 blob of the file names
    file_offsets: np.ndarray  # int64
    titles: np.ndarray  # uint8 UTF-8 blob of the article titles
    title_offsets: np.ndarray  # int64

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
    """Per-passage texts and sources, memory-mapped."""

    def __init__(self, arrays: PassageArrays, texts: np.ndarray) -> None:
        self._texts = StringTable(texts, arrays.text_offsets)
        self._files = StringTable(arrays.files, arrays.file_offsets)
        self._titles = StringTable(arrays.titles, arrays.title_offsets)
        self._rows = np.asarray(arrays.rows).view(np.ndarray)  # plain view: fast rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Passage:
        file, title, article, number, paragraph, start, end = self._rows[i].tolist()
        path = self._files[file]
        return Passage(
            passage_id=passage_id(path, article, number),
            text=self._texts[i],
            source=Source(path, self._titles[title - 1] if title else None, paragraph, start, end),
        )


class PassageWriter:
    """Writes a passage table incrementally: texts appended to one file, sources as rows."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._texts = open(folder / "passages.text.bin", "wb")  # noqa: SIM115 - finish() closes
        self._offsets = array("q", [0])
        self._rows = array("I")
        self._files: dict[str, int] = {}
        self._titles: dict[str, int] = {}  # id 0 means no title

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
            file = self._files.setdefault(source.file, len(self._files))
            _, article, number = parse_passage_id(passage.passage_id)
            row = (file, title, article, number, source.paragraph, source.start, source.end)
            self._rows.extend(row)

    def finish(self) -> int:
        """Write the table's arrays; returns the number of articles."""
        self._texts.close()
        rows = np.frombuffer(self._rows, dtype=np.uint32).reshape(-1, len(_COLUMNS))
        offsets = np.frombuffer(self._offsets, dtype=np.int64)
        files, file_offsets = StringTable.encode(list(self._files))
        titles, title_offsets = StringTable.encode(list(self._titles))
        PassageArrays(rows, offsets, files, file_offsets, titles, title_offsets).save(self._folder)
        return int(np.count_nonzero(rows[:, 3] == 0))  # every article has one passage 0


class Segment:
    """One opened segment: its fields' arrays, its passages and its deletion mask."""

    def __init__(self, folder: Path, info: SegmentInfo) -> None:
        self.info = info
        self.fields = {name: FieldArrays.open(folder, name) for name in FIELDS}
        table = PassageArrays.open(folder)
        texts = _load_blob(folder / "passages.text.bin", int(table.text_offsets[-1]))
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
    """The passages of several segments under global ids (segment base + local id)."""

    def __init__(self, tables: list[PassageTable]) -> None:
        self._tables = tables
        self._bases = np.cumsum([0] + [len(table) for table in tables]).tolist()

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
        self.passages = SegmentedPassages([segment.passages for segment in segments])


def _load_mask(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False), dtype=bool)
    except (OSError, ValueError, EOFError) as error:
        raise IndexCorruptError(f"Index deletions are damaged ({error}); rebuild it.") from error


def _load_blob(path: Path, size: int) -> np.ndarray:
    try:
        if path.stat().st_size != size:
            raise OSError(f"{path.name} has {path.stat().st_size} bytes, expected {size}")
        return np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
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
