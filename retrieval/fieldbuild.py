"""Pipeline step "postings → BM25 field arrays" at build time: spill, sort, weigh.

`FieldBuilder` takes a field's postings chunk by chunk (global term ids or bigram keys, global
passage ids, frequencies), packs each into 64 bits and appends it to a spill file on disk. At
the end the spill is split into term-range buckets, each bucket sorted alone, and the result
becomes the term-major `index.FieldArrays` with rank-bm25's idf, each passage's length norm
and each term's highest weight (what MaxScore prunes with at query time).

Memory peaks at the output, 5 bytes a posting (uint32 passage id + uint8 frequency), plus one
bucket of packed 8-byte postings; never at all the packed postings at once.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from retrieval.errors import IndexBuildError
from retrieval.index import BM25Params, FieldArrays, StringTable, term_hash

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

    Memory peaks at about 5 bytes a posting (the output) plus one sorted bucket, not the size of
    Python token lists. A frequency above 255 in one passage counts as 255.
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
        sorted alone), so memory peaks at the output (5 bytes a posting) plus one bucket, not
        at all the packed postings at once.
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
        docs = np.empty(total, dtype=np.uint32)
        tfs = np.empty(total, dtype=np.uint8)
        terms, starts, done = [], [], 0
        for path in buckets:
            packed = np.fromfile(path, dtype=np.uint64)
            path.unlink()
            packed.sort()
            term_of = packed >> np.uint64(TERM_SHIFT)
            first = np.flatnonzero(np.concatenate([[True], term_of[1:] != term_of[:-1]]))
            terms.append(term_of[first])  # sorted already: where the term changes
            starts.append(first + done)
            del term_of
            docs[done : done + len(packed)] = packed >> np.uint64(DOC_SHIFT) & np.uint64(DOC_MASK)
            tfs[done : done + len(packed)] = packed & np.uint64(TF_MAX)
            done += len(packed)
            del packed
        term_ids = np.concatenate(terms) if terms else np.zeros(0, dtype=np.uint64)
        offsets = np.append(np.concatenate(starts) if starts else [], total).astype(np.int64)
        if keys is None:
            keys = term_ids
        elif len(term_ids) != len(keys):
            raise IndexBuildError(
                "A word of the vocabulary has no postings: the build lost data. Run "
                "`archive-bot index` again; if it happens again, report it with the archive."
            )
        return _field_arrays(docs, tfs, keys, offsets, lengths, params, ordered)


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
    docs: np.ndarray,
    tfs: np.ndarray,
    keys: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    params: BM25Params,
    words: list[str],
) -> FieldArrays:
    n_docs = len(lengths)
    blob, term_offsets = StringTable.encode(words)
    total = float(lengths.sum())
    avgdl = total / n_docs if n_docs and total else 1.0
    idf = okapi_idf(np.diff(offsets), n_docs, params.epsilon)
    norm = params.k1 * (1 - params.b + params.b * lengths / avgdl)
    return FieldArrays(
        keys=np.asarray(keys, dtype=np.uint64),
        offsets=offsets,
        docs=docs,
        tfs=tfs,
        idf=idf,
        norm=norm,
        upper=_upper_bounds(docs, tfs, offsets, idf, norm, params.k1),
        terms=blob,
        term_offsets=term_offsets,
        lengths=np.asarray(lengths, dtype=np.int64),
    )


def _upper_bounds(
    docs: np.ndarray,
    tfs: np.ndarray,
    offsets: np.ndarray,
    idf: np.ndarray,
    norm: np.ndarray,
    k1: float,
) -> np.ndarray:
    """Each term's highest BM25 weight in any passage (what MaxScore prunes with)."""
    best = np.zeros(len(offsets) - 1)
    starts = offsets[:-1]
    for first in range(0, len(docs), 1 << 24):
        last = min(first + (1 << 24), len(docs))
        tf = tfs[first:last].astype(np.float64)
        ratio = tf * (k1 + 1) / (tf + norm[docs[first:last]])
        # Each term's part of this slice: reduce by term starts that fall inside it.
        inside = np.flatnonzero((starts < last) & (offsets[1:] > first))
        cuts = np.maximum(starts[inside], first) - first
        best[inside] = np.maximum(best[inside], np.maximum.reduceat(ratio, cuts))
    # rank-bm25 allows idf <= 0 (epsilon rule); the highest weight is then at the lowest ratio,
    # which is never below 0 — bound it by 0 so pruning stays safe.
    return np.where(idf > 0, idf * best, 0.0)


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
        return builder.finish(params, list(vocab))


def okapi_idf(df: np.ndarray, n_docs: int, epsilon: float) -> np.ndarray:
    """rank-bm25's Okapi idf: log((N - n + 0.5) / (n + 0.5)), negatives → epsilon × mean idf."""
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    if len(idf):
        idf[idf < 0] = epsilon * (idf.sum() / len(idf))
    return idf
