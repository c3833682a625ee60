"""Pipeline step "postings → BM25 field arrays" at build time: spill, sort, weigh.

`FieldBuilder` takes a field's postings chunk by chunk (global term ids or bigram keys, global
passage ids, frequencies), packs each into 64 bits and appends it to a spill file on disk. At
the end the spill is split into term-range buckets, each bucket sorted alone, and the result
becomes the term-major `index.FieldArrays` with rank-bm25's idf, each passage's length norm
and each term's highest weight (what MaxScore prunes with at query time), and per block of 128
postings the raw counts block-max pruning bounds a block with (highest frequency, shortest
passage).

Each sorted bucket's passage ids (uint32) and frequencies (uint8) are written to the field's
`.npy` files as soon as it is sorted, so memory peaks at one bucket of packed 8-byte postings
(a 64th of the field), never at the field's postings: 1.41 GB for a whole 1M-passage build
against 2.5 GB when the output was held whole (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from retrieval.errors import IndexBuildError
from retrieval.index import BLOCK, BM25Params, FieldArrays, NpyColumn, StringTable, term_hash

# A posting is packed into 64 bits while building: term (30) | passage (26) | frequency (8).
# Sorting the packed integers orders postings by term, then passage, in place and in one array.
TERM_SHIFT, DOC_SHIFT = 34, 8
TERM_BITS = 64 - TERM_SHIFT  # a term id or bigram key has 30 bits
SORT_BUCKETS = 64  # a field's postings are sorted in this many term ranges (a power of two)
DOC_MASK, TF_MAX = (1 << 26) - 1, 255
MAX_PASSAGES = DOC_MASK + 1


def count_pairs(terms: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (term, passage) pairs of token occurrences and how often each occurs."""
    keys, tfs = np.unique(terms.astype(np.uint64) << np.uint64(32) | docs, return_counts=True)
    return keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF), tfs


class FieldBuilder:
    """Collects a field's postings chunk by chunk in a spill file, then sorts them into arrays.

    Memory peaks at one sorted bucket, not at the field's postings or Python token lists. A
    frequency above 255 in one passage counts as 255.
    """

    def __init__(self, spill: Path) -> None:
        self._spill_path = spill
        self._spill = open(spill, "wb")  # noqa: SIM115 - closed in finish()
        self._lengths: list[np.ndarray] = []

    def add(
        self, terms: np.ndarray, docs: np.ndarray, tfs: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Add postings (global term ids or keys, global passage ids) and passage lengths."""
        if len(docs) and int(docs.max()) > DOC_MASK:
            raise IndexBuildError(
                f"The archive has more than {MAX_PASSAGES:,} passages, more than one index holds. "
                "Split it into several archives, or raise the passage size."
            )
        packed = (
            terms.astype(np.uint64) << np.uint64(TERM_SHIFT)
            | docs.astype(np.uint64) << np.uint64(DOC_SHIFT)
            | np.minimum(tfs, TF_MAX).astype(np.uint64)
        )
        packed.tofile(self._spill)
        self._lengths.append(np.asarray(lengths, dtype=np.int64))

    @property
    def tokens(self) -> int:
        """Tokens added so far (the sum of passage lengths)."""
        return int(sum(int(lengths.sum()) for lengths in self._lengths))

    def finish(self, params: BM25Params, words: Sequence[str] | None = None) -> FieldArrays:
        """The field's arrays; `words` (by id) for a word field, None for a keyed field.

        The spill is sorted bucket by bucket (terms split into `SORT_BUCKETS` ranges, each
        sorted alone), and each sorted bucket's passage ids and frequencies go straight into
        `<field>.docs.npy` and `<field>.tfs.npy` beside the spill (the returned arrays read them
        from there): memory peaks at one bucket, not at the field's postings. Every per-term
        figure is worked out bucket by bucket; only idf's epsilon rule waits for all of them.
        """
        self._spill.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        if words is None:
            rank, keys, ordered = None, None, []
            bucket_bits = TERM_BITS - (SORT_BUCKETS - 1).bit_length()
            bucket_of = lambda terms: terms >> np.uint64(bucket_bits)  # noqa: E731
        else:
            keys, order = _hash_order(words)
            rank = np.empty(len(order), dtype=np.uint64)
            rank[order] = np.arange(len(order), dtype=np.uint64)
            ordered = [words[i] for i in order]
            per_bucket = max(1, -(-len(order) // SORT_BUCKETS))
            bucket_of = lambda terms: terms // np.uint64(per_bucket)  # noqa: E731
        buckets = _spill_buckets(self._spill_path, rank, bucket_of)
        self._spill_path.unlink()
        total = sum(path.stat().st_size for path in buckets) // 8
        n_docs = len(lengths)
        all_tokens = float(lengths.sum())
        avgdl = all_tokens / n_docs if n_docs and all_tokens else 1.0
        norm = params.k1 * (1 - params.b + params.b * lengths / avgdl)
        parts: list[_Bucket] = []
        folder, field = self._spill_path.parent, self._spill_path.stem
        docs_path, tfs_path = folder / f"{field}.docs.npy", folder / f"{field}.tfs.npy"
        with (
            _NpyWriter(docs_path, np.uint32, total) as docs,
            _NpyWriter(tfs_path, np.uint8, total) as tfs,
        ):
            for path in buckets:
                packed = np.fromfile(path, dtype=np.uint64)
                path.unlink()
                packed.sort()
                parts.append(_Bucket.of(packed, lengths, norm, params.k1, docs, tfs))
                del packed
        return _field_arrays(parts, keys, lengths, norm, params, ordered, docs_path, tfs_path)


@dataclass(frozen=True, slots=True)
class _Bucket:
    """What a sorted bucket of postings leaves behind once its postings are written."""

    terms: np.ndarray  # its term ids or keys, ascending
    df: np.ndarray  # postings of each term
    best: np.ndarray  # each term's highest weight before idf: tf (k1 + 1) / (tf + norm)
    blocks: np.ndarray  # blocks of each term
    block_max_tf: np.ndarray
    block_min_len: np.ndarray

    @classmethod
    def of(
        cls,
        packed: np.ndarray,
        lengths: np.ndarray,
        norm: np.ndarray,
        k1: float,
        docs_out: _NpyWriter,
        tfs_out: _NpyWriter,
    ) -> _Bucket:
        """Unpack a sorted bucket, append its postings to the outputs, keep its per-term parts."""
        term_of = packed >> np.uint64(TERM_SHIFT)
        first = np.flatnonzero(np.concatenate([[True], term_of[1:] != term_of[:-1]]))
        terms = term_of[first]  # sorted already: where the term changes
        del term_of
        docs = (packed >> np.uint64(DOC_SHIFT) & np.uint64(DOC_MASK)).astype(np.uint32)
        tfs = (packed & np.uint64(TF_MAX)).astype(np.uint8)
        offsets = np.append(first, len(packed)).astype(np.int64)
        block_offsets, block_max_tf, block_min_len = _block_bounds(tfs, docs, offsets, lengths)
        best = _best_ratios(docs, tfs, offsets, norm, k1)
        docs_out.write(docs)
        tfs_out.write(tfs)
        return cls(
            terms, np.diff(offsets), best, np.diff(block_offsets), block_max_tf, block_min_len
        )


class _NpyWriter:
    """A 1-D `.npy` file of a known length, written piece by piece (checked complete on close)."""

    def __init__(self, path: Path, dtype: type, length: int) -> None:
        self._dtype, self._length, self._written = np.dtype(dtype), length, 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed in __exit__
        header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False}
        np.lib.format.write_array_header_1_0(self._file, {**header, "shape": (length,)})

    def write(self, values: np.ndarray) -> None:
        """Append values (of the file's dtype)."""
        self._file.write(np.ascontiguousarray(values, dtype=self._dtype).tobytes())
        self._written += len(values)

    def __enter__(self) -> _NpyWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        if exc[0] is None and self._written != self._length:
            raise IndexBuildError(
                f"{self._length:,} postings were sorted but {self._written:,} written: the build "
                "lost data. Run `archive-bot index` again; if it happens again, report it."
            )


def _spill_buckets(
    spill: Path, rank: np.ndarray | None, bucket_of: Callable[[np.ndarray], np.ndarray]
) -> list[Path]:
    """Split a spill file into bucket files by term range, in term order; word ids replaced by
    their rank (`rank`) on the way."""
    files: dict[int, BinaryIO] = {}
    shift, low = np.uint64(TERM_SHIFT), np.uint64((1 << TERM_SHIFT) - 1)
    try:
        with open(spill, "rb") as source:
            while True:
                part = np.fromfile(source, dtype=np.uint64, count=1 << 22)
                if not len(part):
                    break
                terms = part >> shift
                if rank is not None:
                    terms = rank[terms]
                    part = terms << shift | part & low
                bucket = bucket_of(terms)
                order = np.argsort(bucket, kind="stable")
                part, bucket = part[order], bucket[order]
                cuts = np.flatnonzero(np.diff(bucket)) + 1
                numbers = bucket[np.concatenate([[0], cuts])].tolist()
                for number, piece in zip(numbers, np.split(part, cuts), strict=True):
                    if number not in files:
                        files[number] = open(spill.with_suffix(f".{number:04d}"), "wb")  # noqa: SIM115
                    piece.tofile(files[number])
    finally:
        for handle in files.values():
            handle.close()
    return [spill.with_suffix(f".{number:04d}") for number in sorted(files)]


def _hash_order(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The words' hashes in ascending order, and the word ids in that order."""
    hashes = np.fromiter((term_hash(w) for w in words), dtype=np.uint64, count=len(words))
    order = np.argsort(hashes, kind="stable")
    if len(order) > 1 and np.any(hashes[order][1:] == hashes[order][:-1]):
        raise IndexBuildError(
            "Two words of the archive share a 64-bit hash, which the index cannot tell apart. "
            "Remove one of them from the user dictionary, or report it with the archive."
        )
    return hashes[order], order


def _field_arrays(
    parts: Sequence[_Bucket],
    keys: np.ndarray | None,
    lengths: np.ndarray,
    norm: np.ndarray,
    params: BM25Params,
    words: list[str],
    docs_path: Path,
    tfs_path: Path,
) -> FieldArrays:
    """The field's arrays from its buckets' parts; postings read from the files written."""
    term_ids = np.concatenate([p.terms for p in parts]) if parts else np.zeros(0, np.uint64)
    if keys is None:
        keys = term_ids
    elif len(term_ids) != len(keys):
        raise IndexBuildError(
            "A word of the vocabulary has no postings: the build lost data. Run "
            "`archive-bot index` again; if it happens again, report it with the archive."
        )
    joined = {
        name: np.concatenate([getattr(p, name) for p in parts]) if parts else np.zeros(0, dtype)
        for name, dtype in (
            ("df", np.int64), ("best", np.float64), ("blocks", np.int64),
            ("block_max_tf", np.uint8), ("block_min_len", np.uint32),
        )
    }  # fmt: skip
    offsets = np.concatenate([[0], np.cumsum(joined["df"])]).astype(np.int64)
    block_offsets = np.concatenate([[0], np.cumsum(joined["blocks"])]).astype(np.int64)
    idf = okapi_idf(joined["df"], len(lengths), params.epsilon)
    blob, term_offsets = StringTable.encode(words)
    # rank-bm25 allows idf <= 0 (epsilon rule); the highest weight is then at the lowest ratio,
    # which is never below 0 — bound it by 0 so pruning stays safe.
    upper = np.where(idf > 0, idf * joined["best"], 0.0)
    return FieldArrays(
        keys=np.asarray(keys, dtype=np.uint64),
        offsets=offsets,
        docs=NpyColumn(docs_path),
        tfs=NpyColumn(tfs_path),
        idf=idf,
        norm=norm,
        upper=upper,
        terms=blob,
        term_offsets=term_offsets,
        lengths=lengths.astype(np.uint32),
        block_offsets=block_offsets,
        block_max_tf=joined["block_max_tf"],
        block_min_len=joined["block_min_len"],
    )


def _block_bounds(
    tfs: np.ndarray, docs: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each term's postings cut into blocks of `BLOCK`: where each term's blocks start, and
    per block the highest frequency and the shortest passage (raw counts, no idf or avgdl:
    a block's score bound is worked out at query time from the statistics of that moment)."""
    df = np.diff(offsets)
    per_term = -(-df // BLOCK)
    block_offsets = np.zeros(len(df) + 1, dtype=np.int64)
    np.cumsum(per_term, out=block_offsets[1:])
    term = np.repeat(np.arange(len(df)), per_term)
    starts = offsets[term] + BLOCK * (np.arange(len(term)) - block_offsets[term])
    max_tf = np.zeros(len(term), dtype=np.uint8)
    min_len = np.zeros(len(term), dtype=np.uint32)
    step = 1 << 17  # blocks at a time: the passage lengths of 16M postings (128 MB) at most
    for first in range(0, len(term), step):
        last = min(first + step, len(term))
        begin = starts[first]
        end = starts[last] if last < len(term) else len(docs)
        cuts = starts[first:last] - begin
        max_tf[first:last] = np.maximum.reduceat(tfs[begin:end], cuts)
        min_len[first:last] = np.minimum.reduceat(lengths[docs[begin:end]], cuts)
    return block_offsets, max_tf, min_len


def _best_ratios(
    docs: np.ndarray, tfs: np.ndarray, offsets: np.ndarray, norm: np.ndarray, k1: float
) -> np.ndarray:
    """Each term's highest tf (k1 + 1) / (tf + norm) in any passage (times idf: its highest
    weight, what MaxScore prunes with)."""
    best = np.zeros(len(offsets) - 1)
    starts = offsets[:-1]
    for first in range(0, len(docs), 1 << 22):
        last = min(first + (1 << 22), len(docs))
        tf = tfs[first:last].astype(np.float64)
        ratio = tf * (k1 + 1) / (tf + norm[docs[first:last]])
        # Each term's part of this slice: reduce by term starts that fall inside it.
        inside = np.flatnonzero((starts < last) & (offsets[1:] > first))
        cuts = np.maximum(starts[inside], first) - first
        best[inside] = np.maximum(best[inside], np.maximum.reduceat(ratio, cuts))
    return best


def build_field(token_lists: Sequence[Sequence[str]], params: BM25Params) -> FieldArrays:
    """Arrays of a word field over passages given as token lists (rank-bm25's input)."""
    vocab: dict[str, int] = {}
    ids = [
        np.array([vocab.setdefault(t, len(vocab)) for t in tokens], dtype=np.uint64)
        for tokens in token_lists
    ]
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    docs = np.repeat(np.arange(len(token_lists), dtype=np.uint64), lengths)
    terms = np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint64)
    with tempfile.TemporaryDirectory() as folder:
        builder = FieldBuilder(Path(folder) / "spill")
        builder.add(*count_pairs(terms, docs), lengths)
        arrays = builder.finish(params, list(vocab))
        return replace(arrays, docs=arrays.docs[:], tfs=arrays.tfs[:])  # before the files go


def okapi_idf(df: np.ndarray, n_docs: int, epsilon: float) -> np.ndarray:
    """rank-bm25's Okapi idf: log((N - n + 0.5) / (n + 0.5)), negatives → epsilon × mean idf."""
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    if len(idf):
        idf[idf < 0] = epsilon * (idf.sum() / len(idf))
    return idf
