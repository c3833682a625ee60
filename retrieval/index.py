"""Pipeline step "BM25 index (saved) → scores": a field's saved arrays, opened and scored.

A field (words, bigrams) is stored term-major, as bm25s and Lucene do: for each term the ids
of the passages holding it (uint32) and the term's frequency there (uint8), 5 bytes a posting.
Scores are computed per query from those postings and are exactly `rank_bm25.BM25Okapi`'s
(same idf, same epsilon rule for negative idf, same length normalisation), but touch only the
passages a query's terms occur in instead of looping over every passage.

A question reaches a field as the ids of its terms; `Field.gather` finds where their postings
lie (a `Postings`), and both `Field.top` (the field's best passages) and `Field.scores_for`
(exact scores of the fused candidates) read them there, in place.

Each term's postings are cut into blocks of 128 that keep their highest frequency and shortest
passage (raw counts): `Field.top` works out each block's highest possible weight at query time
(block-max MaxScore, `kernels.top_k_blocks`, compiled C), so idf and average length may come
from statistics combined at query time. A field of several segments (`live.LiveField`) is
scored by exact MaxScore from per-term bounds alone: a term's live postings span segments, and
blocks cut from them at query time cost more than they skip (benchmarks/RESULTS.md).

On disk a field is thirteen `.npy` arrays (`FieldArrays`, saved and opened in one place; the
index's `meta.json` is `manifest.IndexManifest`). Per-term and per-passage arrays that every
question looks into are opened with `mmap_mode="r"`, so opening is instant and memory is paged
in on demand. Postings and their blocks are mapped too, but their touched pages are dropped from
the process every `DROP_AFTER` bytes of questions' postings (`NpyColumn.drop`): the kernels read
only the pages pruning leaves them, and resident memory stays bounded. The passage lengths are
read once with `pread`. Terms are found by a 64-bit hash in a sorted array, so no vocabulary
dict is loaded.
Building a field (spilling and sorting postings) is `retrieval.fieldbuild`.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval import kernels
from retrieval.errors import IndexCorruptError

FIELDS = ("words", "bigrams")
BLOCK = 128  # postings per block: each block keeps its highest frequency and shortest passage


@dataclass(frozen=True, slots=True)
class BM25Params:
    """Okapi BM25 parameters; defaults are rank-bm25's."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25


@functools.lru_cache(maxsize=1 << 16)  # questions repeat words; segments look each one up
def term_hash(term: str) -> int:
    """Stable 64-bit hash of a term: the key terms are found by in a saved field."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")


class StringTable:
    """Many strings as one UTF-8 blob plus offsets: compact, memory-mappable, O(1) access."""

    def __init__(
        self,
        blob: npt.NDArray[np.uint8] | NpyColumn,
        offsets: npt.NDArray[np.int64] | NpyColumn,
    ) -> None:
        # Plain views: element access on a np.memmap goes through slow Python-level code.
        self._blob = blob if isinstance(blob, NpyColumn) else np.asarray(blob).view(np.ndarray)
        self._offsets = (
            offsets if isinstance(offsets, NpyColumn) else np.asarray(offsets).view(np.ndarray)
        )

    @staticmethod
    def encode(strings: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """The blob and offsets arrays for a list of strings."""
        encoded = [s.encode() for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        offsets, blob = self._offsets, self._blob
        if isinstance(offsets, NpyColumn):  # saved: two small reads, as bytes
            start, end = offsets.values(i, 2)
        else:
            start, end = offsets[i : i + 2].tolist()
        if isinstance(blob, NpyColumn):
            return blob.raw(start, end - start).decode()
        return blob[start:end].tobytes().decode()


SMALL_READ = 1 << 14  # bytes: a range up to this size is read as bytes and copied in


class NpyColumn:
    """An `.npy` array read by slices of its first axis with `os.pread`, or mapped whole.

    Passage lengths, texts and the passage table are read, not memory-mapped: a mapping's
    touched pages count towards the process's resident memory and stay there, while read pages
    live in the OS cache, shared and evictable. Postings and their blocks are mapped (`mapped`)
    and their pages dropped from time to time (`drop`): a question reads a few pages here and
    there of several MB of them.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            header = np.lib.format
            read = header.read_array_header_1_0 if major == 1 else header.read_array_header_2_0
            shape, fortran, dtype = read(handle)
            self.offset = handle.tell()
        self.path = path
        self.dtype, self.length, self.row_shape = dtype, shape[0] if shape else 0, shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        if not shape or (fortran and len(shape) > 1):
            raise ValueError(f"{path.name} is not an array of rows in C order")
        if path.stat().st_size != self.offset + self.length * self.row_bytes:
            raise ValueError(f"{path.name} is truncated")
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        self._map: mmap.mmap | None = None
        self._mapped: np.ndarray | None = None
        self._mapping = threading.Lock()  # one mapping, whichever thread asks first

    @classmethod
    def of_bytes(cls, path: Path) -> NpyColumn:
        """A file of raw bytes (no `.npy` header), read by slices the same way."""
        column = cls.__new__(cls)
        column.offset, column.dtype, column.length = 0, np.dtype(np.uint8), path.stat().st_size
        column.row_shape, column.row_bytes = (), 1
        column.path = path
        column._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(column, os.close, column._fd)
        column._map, column._mapped, column._mapping = None, None, threading.Lock()
        return column

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, where: slice | np.ndarray) -> np.ndarray:
        """Rows `start:stop` (one read), or the rows an array of row numbers names (one read
        each, any order, as numpy's indexing by an integer array)."""
        if not isinstance(where, slice):
            return self._take(where)
        start, stop, _ = where.indices(self.length)
        out = np.empty((max(stop - start, 0), *self.row_shape), dtype=self.dtype)
        self.read_into(start, out)
        return out

    def _take(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.row_shape), dtype=self.dtype)
        for i, row in enumerate(np.asarray(rows, dtype=np.int64).tolist()):
            if not 0 <= row < self.length:
                raise IndexError(f"row {row} of {self.path.name} is out of range")
            self.read_into(row, out[i : i + 1])
        return out

    def read_ranges(self, starts: Sequence[int], counts: Sequence[int], out: np.ndarray) -> None:
        """Rows `starts[i]:starts[i] + counts[i]` for each i, one after another, into `out`:
        one read each, with nothing else per range (a question reads dozens of them)."""
        buffer, size = out.reshape(-1).view(np.uint8).data, self.row_bytes
        fd, base, at = self._fd, self.offset, 0
        for start, count in zip(starts, counts, strict=True):
            end, where = at + count * size, base + start * size
            if end - at <= SMALL_READ:  # `pread`'s bytes copied in: about half `preadv`'s cost
                data = os.pread(fd, end - at, where)
                done = len(data)
                buffer[at : at + done] = data
            else:
                done = os.preadv(fd, [buffer[at:end]], where)
            if done != end - at:  # a short read: read the range again, whole
                self.read_into(start, out[at // size : end // size])
            at = end

    def mapped(self) -> np.ndarray:
        """The whole column as a read-only array over a mapping of the file, made once: the
        kernels read a question's postings in place, touching only the pages they need.
        Touched pages count towards resident memory until `drop`."""
        if self._mapped is not None:
            return self._mapped
        with self._mapping:
            if self._mapped is None and self.length == 0:
                self._mapped = np.empty((0, *self.row_shape), dtype=self.dtype)
            elif self._mapped is None:
                self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
                items = self.length * self.row_bytes // self.dtype.itemsize
                self._mapped = np.frombuffer(
                    self._map, dtype=self.dtype, count=items, offset=self.offset
                ).reshape(self.length, *self.row_shape)
            return self._mapped

    def drop(self) -> None:
        """Unmap the mapping's pages from this process (they stay in the OS cache): its
        resident memory falls back, and the next reads map what they touch again. Safe while
        other threads read the mapping; holds no GIL meanwhile (`kernels.drop_pages`)."""
        if self._map is not None:
            kernels.drop_pages(self._map)

    def raw(self, start: int, count: int) -> bytes:
        """Rows `start:start + count` as the file holds them, in one `pread`: for the few rows
        a passage needs, about a third of the cost of reading into an array (`read_into`)."""
        if start < 0 or count < 0 or start + count > self.length:
            raise IndexError(f"rows {start}:{start + count} of {self.path.name} are out of range")
        size, at = count * self.row_bytes, self.offset + start * self.row_bytes
        data = os.pread(self._fd, size, at)
        while 0 < len(data) < size:  # a short read: read the rest
            more = os.pread(self._fd, size - len(data), at + len(data))
            if not more:
                break
            data += more
        if len(data) != size:
            raise OSError(f"index file ended early: read {len(data)} of {size} bytes")
        return data

    def values(self, start: int, count: int) -> list[Any]:
        """Rows `start:start + count` as Python values (`raw`, then numpy's `tolist`)."""
        return (
            np.frombuffer(self.raw(start, count), dtype=self.dtype)
            .reshape(count, *self.row_shape)
            .tolist()
        )

    def read_into(self, start: int, out: np.ndarray) -> None:
        """Read `len(out)` rows from `start` straight into `out` (no intermediate copy)."""
        buffer, at = out.reshape(-1).view(np.uint8).data, self.offset + start * self.row_bytes
        done = os.preadv(self._fd, [buffer], at)
        while 0 < done < len(buffer):  # a short read (signals, huge ranges): read the rest
            more = os.preadv(self._fd, [buffer[done:]], at + done)
            if more <= 0:
                break
            done += more
        if done != len(buffer):
            raise OSError(f"index file ended early: read {done} of {len(buffer)} bytes")


@dataclass(frozen=True, slots=True)
class FieldArrays:
    """A field's arrays, saved as `<field>.<name>.npy` each: the one definition of the layout.

    Term t's postings are `docs[offsets[t]:offsets[t + 1]]` (uint32 passage ids) with their
    frequencies in `tfs` (uint8); terms are ordered by `keys`. `idf` and `upper` (a term's
    highest weight) are per term, `norm` and `lengths` per passage; `terms`/`term_offsets` hold
    the words of a word field as a `StringTable` (empty for bigrams, whose key is the term).
    `idf`, `norm` and `upper` hold for the field alone; a field of several segments combines
    `lengths` and the document frequencies (`offsets`) instead (`retrieval.live`).
    """

    keys: np.ndarray  # uint64, sorted: word hash or bigram key
    offsets: np.ndarray  # int64, n_terms + 1
    docs: np.ndarray | NpyColumn  # uint32 passage ids, term-major
    tfs: np.ndarray | NpyColumn  # uint8 frequency of the term in that passage
    idf: np.ndarray  # float64 per term, rank-bm25's
    norm: np.ndarray  # float64 per passage: k1 * (1 - b + b * len / avgdl)
    upper: np.ndarray  # float64 per term: its highest weight in any passage
    terms: np.ndarray  # uint8 UTF-8 blob of the words
    term_offsets: np.ndarray  # int64, n_terms + 1 for words, [0] for bigrams
    lengths: np.ndarray | NpyColumn  # uint32 per passage: its tokens (avgdl; across segments)
    block_offsets: np.ndarray  # int64, n_terms + 1: term t's blocks are these block numbers
    block_max_tf: np.ndarray | NpyColumn  # uint8 per block of `BLOCK` postings: highest tf
    block_min_len: np.ndarray | NpyColumn  # uint32 per block: its shortest passage (tokens)

    def save(self, folder: Path, prefix: str) -> None:
        """Write each array as `<prefix>.<name>.npy`."""
        for item in fields(self):
            values, path = getattr(self, item.name), folder / f"{prefix}.{item.name}.npy"
            if isinstance(values, NpyColumn):
                if values.path == path:
                    continue  # written there already (the build streams postings to disk)
                values = values[:]
            np.save(path, np.ascontiguousarray(np.asarray(values)))

    @classmethod
    def open(cls, folder: Path, prefix: str) -> FieldArrays:
        """Open saved arrays (postings, blocks and lengths as `NpyColumn`s, the rest mapped)
        and check they agree."""
        mapped = load_arrays(folder, prefix, [f.name for f in fields(cls) if f.name not in _READ])
        try:
            docs, tfs, max_tf, min_len, lengths = (
                NpyColumn(folder / f"{prefix}.{name}.npy") for name in _READ
            )
        except (OSError, ValueError, EOFError) as error:
            raise IndexCorruptError(
                f"Index field {prefix!r} is damaged ({error}). Run `archive-bot index` to rebuild."
            ) from error
        arrays = cls(
            docs=docs, tfs=tfs, block_max_tf=max_tf, block_min_len=min_len, lengths=lengths,
            **mapped,
        )  # fmt: skip
        if not arrays.consistent():
            raise IndexCorruptError(
                f"Index field {prefix!r} is inconsistent. Run `archive-bot index` to rebuild."
            )
        return arrays

    def consistent(self) -> bool:
        """Whether the arrays' lengths agree with each other."""
        n_terms = len(self.keys)
        return (
            len(self.offsets) == n_terms + 1
            and len(self.idf) == n_terms
            and len(self.upper) == n_terms
            and len(self.docs) == len(self.tfs)
            and int(self.offsets[-1]) == len(self.docs)
            and len(self.term_offsets) in (1, n_terms + 1)
            and len(self.lengths) == len(self.norm)
            and len(self.block_offsets) == n_terms + 1
            and int(self.block_offsets[-1]) == len(self.block_max_tf) == len(self.block_min_len)
        )


# Opened as `NpyColumn`s: postings and blocks mapped by the column, their pages dropped from
# time to time (`Field.gather`); the lengths read once, for the average length and the kernels.
_READ = ("docs", "tfs", "block_max_tf", "block_min_len", "lengths")
BlockRows = tuple[np.ndarray, np.ndarray, np.ndarray]  # first block a term, max tf, min length


@dataclass(frozen=True, slots=True)
class Postings:
    """A query's postings in one field: what `Field.top` and `Field.scores_for` use.

    Terms come in MaxScore's order (`scan_order`); term i's passages are
    `docs[starts[i]:ends[i]]` with frequencies in `tfs`: the field's whole arrays, read in
    place (`Field.gather`), or a buffer the terms' postings were copied into
    (`live.LiveField.gather`). A term asked twice is kept twice, as rank-bm25 counts it twice.
    """

    terms: np.ndarray  # int64 term ids
    docs: np.ndarray  # uint32
    tfs: np.ndarray  # uint8
    starts: np.ndarray  # int64 per term: where its postings start in docs and tfs
    ends: np.ndarray  # int64 per term: where they end
    idf: np.ndarray  # float64 per term
    upper: np.ndarray  # float64 per term: its highest weight
    # The terms' blocks (`Field.blocks`): each term's first block in the block arrays, and
    # each block's highest frequency and shortest passage; None: no blocks.
    blocks: BlockRows | None = None

    def __len__(self) -> int:
        return len(self.terms)

    def of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Term i's passages and frequencies."""
        start, end = int(self.starts[i]), int(self.ends[i])
        return self.docs[start:end], self.tfs[start:end]


WORD_IDS_KEPT = 200_000  # words whose term ids a field remembers (a few MB)
# Bytes of postings a field's questions may touch in its mapped arrays before their pages are
# dropped from this process (`Field.gather`): what resident memory can grow by, per field.
DROP_AFTER = 16 << 20


def scan_order(lengths: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """The order MaxScore goes through a query's terms in (`Postings`): fewest postings for
    their highest weight first, the strongest first among equals.

    The kernels scan terms in this order until the weights of the terms left cannot lift a
    passage not yet seen to the k-th best; those terms are then only looked up for the passages
    that can still reach it. Putting last the terms with the most postings for what they can
    add leaves the most postings unscanned: rank-bm25 floors the idf of a term in more than half
    the passages at epsilon times the mean idf, so the commonest words (新闻, 联播 in the news
    corpus, 600k postings each) outweigh rarer ones and, ordered by weight alone, were scanned
    before them (RESULTS.md "Issue 15, eleventh pass"). Any order gives the same ranking; a
    passage's score is summed in this order (`top` and `scores_for` alike).
    """
    cost = np.divide(lengths, upper, out=np.full(len(upper), np.inf), where=upper > 0)
    return np.lexsort((-upper, cost))


def _in_place(column: np.ndarray | NpyColumn) -> np.ndarray:
    """A column as an array the kernels read in place: a saved one mapped, else itself."""
    return column.mapped() if isinstance(column, NpyColumn) else column


class Field:
    """One BM25 field over all passages, scored from term-major postings.

    A term is found by its key: for words a 64-bit hash of the word (checked against the stored
    word), for character bigrams the bigram key itself.
    """

    def __init__(self, arrays: FieldArrays, params: BM25Params) -> None:
        self.params = params
        # Small arrays as plain views: indexing a np.memmap element by element is slow.
        self.keys = np.asarray(arrays.keys).view(np.ndarray)
        self.offsets = np.asarray(arrays.offsets).view(np.ndarray)
        self.docs = arrays.docs
        self.tfs = arrays.tfs
        self.idf = np.asarray(arrays.idf).view(np.ndarray)
        self.norm = np.asarray(arrays.norm).view(np.ndarray)
        self.upper = np.asarray(arrays.upper).view(np.ndarray)
        self.lengths = arrays.lengths
        self.block_offsets = np.asarray(arrays.block_offsets).view(np.ndarray)
        self.block_max_tf = arrays.block_max_tf
        self.block_min_len = arrays.block_min_len
        self._avgdl: float | None = None
        self._lengths: np.ndarray | None = None  # per passage, read once
        self._scoring: kernels.Scoring | None = None
        has_words = len(arrays.term_offsets) > 1
        self.words = StringTable(arrays.terms, arrays.term_offsets) if has_words else None
        self._drop_lock = threading.Lock()
        self._since_drop = 0  # bytes of postings asked for since the mapped pages were dropped
        self._drop_due = False  # whether they are to be dropped (`drop_pages`)
        self._word_ids: dict[str, int] = {}  # word → term id (-1: not in the vocabulary)
        self._top_idf: float | None = None  # the highest idf (`idf_of`), found once

    @property
    def size(self) -> int:
        """Number of passage slots (ids), deleted ones included in a field of segments."""
        return len(self.norm)

    def term_ids(self, tokens: Sequence[str] | np.ndarray) -> list[int]:
        """Ids of the tokens that are in the vocabulary (repeats kept, unknown dropped)."""
        return [i for i in self.lookup(tokens) if i >= 0]

    def lookup(self, tokens: Sequence[str] | np.ndarray) -> list[int]:
        """Each token's term id, -1 for a token not in the vocabulary."""
        if not len(tokens) or not len(self.keys):
            return [-1] * len(tokens)
        if isinstance(tokens, np.ndarray):  # bigram keys: the key is the term
            keys = tokens.astype(np.uint64)
            where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            return np.where(self.keys[where] == keys, where, -1).tolist()
        # Words: hashed, found by binary search, checked against the stored word (a 64-bit hash
        # can collide). Questions repeat words, so each word's id (or -1) is remembered.
        if len(self._word_ids) > WORD_IDS_KEPT:
            self._word_ids = {}
        known = self._word_ids
        new = [t for t in dict.fromkeys(tokens) if t not in known]
        if new:
            keys = np.array([term_hash(t) for t in new], dtype=np.uint64)
            where = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            for token, i, key in zip(new, where.tolist(), keys.tolist(), strict=True):
                hit = int(self.keys[i]) == key and (self.words is None or self.words[i] == token)
                known[token] = i if hit else -1
        return list(map(known.__getitem__, tokens))

    def idf_of(self, words: Sequence[str]) -> list[float]:
        """Each word's idf (the field's highest idf for a word it does not know)."""
        if self._top_idf is None:
            self._top_idf = float(self.idf.max()) if len(self.idf) else 1.0
        top = self._top_idf
        return [float(self.idf[i]) if i >= 0 else top for i in self.lookup(list(words))]

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Passage ids and BM25 weights of one term."""
        start, end = int(self.offsets[term]), int(self.offsets[term + 1])
        docs = self.docs[start:end]
        tf = self.tfs[start:end].astype(np.float64)
        k1 = self.params.k1
        return docs, self.idf[term] * (tf * (k1 + 1) / (tf + self.norm[docs]))

    def gather(self, tokens: Sequence[str] | np.ndarray) -> Postings:
        """The postings of a query's tokens (words, or bigram keys), in place.

        Nothing is read ahead: the kernels read the field's mapped arrays where each term's
        postings lie, and pruning leaves most of a question's postings untouched (at a million
        passages they read about a quarter of them; copying them all in took longer than
        ranking, RESULTS.md "Issue 15, eighth pass"). Once the postings asked for pass
        `DROP_AFTER` bytes, the pages touched are due to be handed back to the OS cache
        (`drop_pages`: the searcher has its helper thread do it after the question; one not
        taken by the next `gather` is taken there).
        """
        terms = np.asarray(self.term_ids(tokens), dtype=np.int64)
        ids = terms[scan_order(self.offsets[terms + 1] - self.offsets[terms], self.upper[terms])]
        starts, ends = self.offsets[ids], self.offsets[ids + 1]
        docs, tfs = _in_place(self.docs), _in_place(self.tfs)
        blocks = self.blocks(ids)
        self._exposed(int((ends - starts).sum()) * (docs.itemsize + tfs.itemsize))
        return Postings(ids, docs, tfs, starts, ends, self.idf[ids], self.upper[ids], blocks)

    @property
    def pages_due(self) -> bool:
        """Whether the mapped postings' pages are due to be dropped (`drop_pages`)."""
        return self._drop_due

    def drop_pages(self) -> None:
        """Drop the mapped postings' and blocks' pages from the process if due (`gather`)."""
        with self._drop_lock:
            due, self._drop_due = self._drop_due, False
        if due:
            for column in (self.docs, self.tfs, self.block_max_tf, self.block_min_len):
                if isinstance(column, NpyColumn):
                    column.drop()

    def _exposed(self, size: int) -> None:
        """Count `size` bytes of postings a question may touch: past `DROP_AFTER`, the mapped
        pages are due to be dropped. A drop still due from an earlier question is taken now."""
        with self._drop_lock:
            late = self._drop_due
            self._since_drop += size
            if self._since_drop > DROP_AFTER:
                self._since_drop, self._drop_due = 0, True
        if late:
            self.drop_pages()

    def read(self, start: int, docs: np.ndarray, tfs: np.ndarray) -> None:
        """Read `len(docs)` postings from position `start` into `docs` and `tfs`."""
        read_ranges(self.docs, [start], [len(docs)], docs)
        read_ranges(self.tfs, [start], [len(docs)], tfs)

    def top(
        self,
        postings: Postings,
        k: int,
        passages: tuple[int, int] | None = None,
        board: kernels.Board | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best passage ids and their scores, best first (ties: lower id first); of the
        passages `passages` = (first, end) only, if given, with a `board` shared with the
        call ranking the others (`kernels.top_k`)."""
        if not len(postings) or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        upper, usable = postings.upper, not np.any(postings.idf < 0)
        if not usable:  # negative weights: partial scores bound nothing
            upper = np.full(len(postings), np.inf)
        scores, slots, cand = scratch_arrays(self.size)
        idf, scoring, k1 = postings.idf, self.scoring, self.params.k1
        docs, tfs, starts, ends = postings.docs, postings.tfs, postings.starts, postings.ends
        saved = postings.blocks
        if saved is None:  # no blocks (`live.LiveField`): MaxScore with per-term bounds alone
            return kernels.top_k(
                docs, tfs, starts, ends, idf, upper, scoring, k, scores, slots, cand, passages,
                board,
            )  # fmt: skip
        first, max_tf, min_len = saved
        blocks = (first, max_tf, min_len, BLOCK, self.params.b, self.avgdl, usable)
        return kernels.top_k_blocks(
            docs, tfs, starts, ends, idf, upper, scoring, k1, k, scores, slots, cand, blocks,
            passages, board,
        )  # fmt: skip

    def blocks(self, terms: np.ndarray) -> BlockRows | None:
        """The blocks of the postings of `terms`, in place as the postings (`gather`): each
        term's first block in the field's block arrays, and those arrays of every block's
        highest frequency and shortest passage (None: a field without blocks,
        `live.LiveField`)."""
        max_tf, min_len = _in_place(self.block_max_tf), _in_place(self.block_min_len)
        return self.block_offsets[terms], max_tf, min_len

    @property
    def avgdl(self) -> float:
        """Average passage length in tokens (1.0 for an empty field, as the build uses)."""
        if self._avgdl is None:
            lengths = self._passage_lengths()
            total = float(lengths.sum(dtype=np.int64))
            self._avgdl = total / len(lengths) if len(lengths) and total else 1.0
        return self._avgdl

    def _passage_lengths(self) -> np.ndarray:
        """Each passage's length in tokens, read once for the average and the kernels: uint16
        when the longest is below 65,536 (passages are cut at `passages.DEFAULT_MAX_CHARS`
        characters), else uint32. A posting's random read of its passage's length then touches
        half the memory: the kernels take 0.95 of the time at a million passages (RESULTS.md
        "Issue 15, seventh pass")."""
        if self._lengths is None:
            lengths = np.asarray(self.lengths[:])
            narrow = int(lengths.max(initial=0)) <= np.iinfo(np.uint16).max
            self._lengths = lengths.astype(np.uint16 if narrow else np.uint32, copy=False)
        return self._lengths

    @property
    def scoring(self) -> kernels.Scoring:
        """What the kernels weigh a posting by: each passage's length (`_passage_lengths`),
        and a table of rank-bm25's tf (k1 + 1) / (tf + norm) for every frequency 0–255 (rows)
        and length from 0 to the longest (columns), norm = k1 (1 - b + b length / avgdl) worked
        out as the build works out `norm`, so each entry has the bits of the per-posting
        formula: a posting weighs idf times its entry, with no division, and a passage's length
        is read instead of its 8-byte norm. Read and built once (2 MB and about 0.6 MB at a
        million passages, where the mapped norms took 7.8 MB once touched)."""
        if self._scoring is None:
            lengths = self._passage_lengths()
            k1, b = self.params.k1, self.params.b
            norms = k1 * (1 - b + b * np.arange(int(lengths.max(initial=0)) + 1) / self.avgdl)
            tf = np.arange(256, dtype=np.float64)[:, np.newaxis]
            ratios = tf * (k1 + 1) / (tf + norms)
            self._scoring = lengths, ratios.reshape(-1)
        return self._scoring

    def nonnegative(self, postings: Postings) -> bool:
        """Whether every score from these postings is at least 0 (no term has a negative idf,
        which rank-bm25's epsilon rule allows when the mean idf is negative)."""
        return not np.any(postings.idf < 0)

    def scores_for(self, postings: Postings, passages: np.ndarray) -> np.ndarray:
        """Exact scores of the given passages (0 where no term occurs)."""
        if not len(postings) or not len(passages):
            return np.zeros(len(passages))
        targets = np.asarray(passages, dtype=np.uint32)
        docs, tfs, starts, ends = postings.docs, postings.tfs, postings.starts, postings.ends
        return kernels.scores_of(docs, tfs, starts, ends, postings.idf, self.scoring, targets)

    def get_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Dense scores of every passage (like rank-bm25's `get_scores`; for tests and tools)."""
        scores = np.zeros(self.size, dtype=np.float64)
        postings, k1 = self.gather(tokens), self.params.k1
        for i in range(len(postings)):
            docs, tfs = postings.of(i)
            tf = tfs.astype(np.float64)
            scores[docs] += postings.idf[i] * (tf * (k1 + 1) / (tf + self.norm[docs]))
        return scores


_SCRATCH = threading.local()  # passage-sized scratch of the kernels, one set per thread


def scratch_arrays(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's scratch for a top-k kernel over `size` passages: room for the candidates'
    scores, cleared slots (each passage's place among the candidates + 1) and room for the
    candidates (uint32 ids), as `kernels.top_k` takes them.

    Allocating them per query costs more than scoring it, and searches run in worker threads,
    so each thread keeps one set, grown to the largest field it scored. Every field shares it:
    a thread scores one field at a time and the kernels leave the slots cleared (16 MB at a
    million passages, of which a question touches the slots of the passages it sees and the
    first entries of the others).
    """
    arrays = getattr(_SCRATCH, "arrays", None)
    if arrays is None or len(arrays[0]) < size:
        arrays = (np.empty(size), np.zeros(size, dtype=np.uint32), np.empty(size, dtype=np.uint32))
        _SCRATCH.arrays = arrays
    scores, slots, cand = arrays
    return scores[:size], slots[:size], cand[:size]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (ties: lower index first, at the cut too)."""
    if len(scores) <= k:
        part = np.arange(len(scores))
    else:  # argpartition alone would keep an arbitrary few of the scores tied at the cut
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        above = np.flatnonzero(scores > kth)
        part = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    return part[np.lexsort((part, -scores[part]))]


def read_ranges(
    values: np.ndarray | NpyColumn, starts: Sequence[int], counts: Sequence[int], out: np.ndarray
) -> None:
    """Ranges of rows of a saved column (by `pread`) or of an array in memory (a field built in
    a test or being built), one after another, into `out`."""
    if isinstance(values, NpyColumn):
        values.read_ranges(starts, counts, out)
        return
    at = 0
    for start, count in zip(starts, counts, strict=True):
        out[at : at + count] = values[start : start + count]
        at += count


def load_arrays(folder: Path, prefix: str, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Memory-map `<prefix>.<name>.npy` arrays; a missing or damaged one is IndexCorruptError."""
    arrays = {}
    for name in names:
        path = folder / f"{prefix}.{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise IndexCorruptError(
                f"Index file {path.name} is missing or damaged ({error}). "
                "Run `archive-bot index` to rebuild."
            ) from error
    return arrays
