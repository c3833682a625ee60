"""Pipeline step "BM25 index → scores" over several segments: one field, statistics combined.

An index that was updated in place is several immutable segments (`retrieval.segments`), each
with its own term-major postings and local passage ids, plus a mask of the passages deleted
since (a file changed or removed). BM25 needs archive-wide figures: the live passage count,
their average length and each term's document frequency among live passages. `LiveField`
combines them once when the index is opened, e.g. for segments of 900 and 100 passages with 50
of the first deleted: N = 950, avgdl over those 950 lengths, df(t) = live postings of t in both
segments, idf with rank-bm25's epsilon rule over the live vocabulary in key order (so the sum
behind the mean idf runs in the same order as a fresh build's). Passage ids are global:
segment base + local id. A query's postings are read from every segment, deleted passages
dropped, so `Field.top` and `Field.scores_for` score them exactly as a fresh build would; each
term's highest weight (MaxScore's bound) is computed from the postings read (no block-max
across segments: see `LiveField.blocks`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from retrieval.fieldbuild import okapi_idf
from retrieval.index import BM25Params, Field, FieldArrays, NpyColumn, Postings, scan_order

READ_CHUNK = 1 << 24  # postings read at a time when counting a segment's deleted ones
# A segment with at most this many postings (20 MB) is read into memory when opened: a query
# then costs no system call in it (a day's pages are a few hundred thousand postings).
IN_MEMORY_POSTINGS = 1 << 22
KEPT_POSTINGS = 1 << 22  # a thread keeps postings buffers up to this size (20 MB a field)


class LiveField(Field):
    """One BM25 field over segments, with global passage ids and combined statistics."""

    def __init__(
        self,
        parts: Sequence[FieldArrays],
        deleted: Sequence[np.ndarray | None],
        params: BM25Params,
    ) -> None:
        super().__init__(parts[0], params)
        self._scratch = threading.local()  # each thread's postings buffers (`_postings_room`)
        self.parts = [Field(_in_memory(arrays), params) for arrays in parts]
        self.has_deleted = [d is not None and bool(np.any(d)) for d in deleted]
        sizes = [len(arrays.lengths) for arrays in parts]
        self.bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        masks = [
            np.zeros(n, bool) if d is None else np.asarray(d, bool)
            for n, d in zip(sizes, deleted, strict=True)
        ]
        self.deleted = np.concatenate(masks) if masks else np.zeros(0, bool)
        lengths = np.concatenate([np.asarray(a.lengths[:], dtype=np.int64) for a in parts])
        alive = ~self.deleted
        n_live = int(alive.sum())
        total = float(lengths[alive].sum())
        avgdl = total / n_live if n_live and total else 1.0
        self.norm = params.k1 * (1 - params.b + params.b * lengths / avgdl)
        self.lengths, self._avgdl = lengths, avgdl
        self.part_idf, self.part_df = _combined_idf(parts, masks, n_live, params.epsilon)
        self.live_passages = n_live

    def blocks(self, terms: np.ndarray) -> None:
        """None: no block-max across segments. A term's live postings span segments (deleted
        ones dropped), so the saved blocks do not line up with them, and blocks cut from the
        postings read cost more per query than they skip (about 10% slower at 50 segments of
        145k passages, benchmarks/RESULTS.md); MaxScore with exact per-term bounds instead."""
        return None

    def idf_of(self, words: Sequence[str]) -> list[float]:
        """Each word's combined idf (the highest idf of a live term for a word not live)."""
        words = list(words)
        found = [part.lookup(words) for part in self.parts]
        live = [idf[df > 0] for idf, df in zip(self.part_idf, self.part_df, strict=True)]
        top = max((float(idf.max()) for idf in live if len(idf)), default=1.0)
        out = []
        for i in range(len(words)):
            known = [
                float(self.part_idf[p][ids[i]])
                for p, ids in enumerate(found)
                if ids[i] >= 0 and self.part_df[p][ids[i]] > 0
            ]
            out.append(known[0] if known else top)
        return out

    def gather(self, tokens: Sequence[str] | np.ndarray) -> Postings:
        """The postings of a query's tokens in every segment, live passages only, copied one
        term after the other into buffers kept for the calling thread (the `Postings` hold
        until that thread's next `gather` on this field)."""
        if not isinstance(tokens, np.ndarray):
            tokens = list(tokens)
        found = [part.lookup(tokens) for part in self.parts]
        docs_of, tfs_of, idf_of, upper_of = [], [], [], []
        k1 = self.params.k1
        for i in range(len(tokens)):
            docs, tfs, idf = self._read_term(found, i)
            if not len(docs):
                continue  # in no live passage: not in a fresh build's vocabulary either
            tf = tfs.astype(np.float64)
            best = float(np.max(tf * (k1 + 1) / (tf + self.norm[docs])))
            docs_of.append(docs)
            tfs_of.append(tfs)
            idf_of.append(idf)
            upper_of.append(idf * best if idf > 0 else 0.0)
        lengths = np.asarray([len(d) for d in docs_of], dtype=np.int64)
        order = scan_order(lengths, np.asarray(upper_of, dtype=np.float64)).tolist()
        bounds = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum([len(docs_of[t]) for t in order], out=bounds[1:])
        docs, tfs = self._postings_room(int(bounds[-1]))
        if order:
            np.concatenate([docs_of[t] for t in order], out=docs)
            np.concatenate([tfs_of[t] for t in order], out=tfs)
        return Postings(
            terms=np.asarray(order, dtype=np.int64),
            docs=docs,
            tfs=tfs,
            starts=bounds[:-1],
            ends=bounds[1:],
            idf=np.asarray([idf_of[t] for t in order], dtype=np.float64),
            upper=np.asarray([upper_of[t] for t in order], dtype=np.float64),
        )

    def _postings_room(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Room for n postings (passage ids and frequencies) in this thread's reused buffers.

        A query's postings are a few MB at a million passages; fresh arrays each time would
        leave the heap at the high-water mark of every size asked for, not of the largest.
        """
        docs, tfs = getattr(
            self._scratch, "postings", (np.empty(0, np.uint32), np.empty(0, np.uint8))
        )
        if len(docs) < n:
            size = 1 << max(n - 1, 1).bit_length()  # powers of two: few reallocations
            if size > KEPT_POSTINGS:  # a rare huge query: its own arrays, freed after it
                return np.empty(n, np.uint32), np.empty(n, np.uint8)
            docs, tfs = np.empty(size, np.uint32), np.empty(size, np.uint8)
            self._scratch.postings = docs, tfs
        return docs[:n], tfs[:n]

    def _read_term(self, found: list[list[int]], i: int) -> tuple[np.ndarray, np.ndarray, float]:
        """One token's live postings across segments (global ids, ascending) and its idf."""
        docs_parts, tfs_parts, idf = [], [], 0.0
        for p, part in enumerate(self.parts):
            term = found[p][i]
            if term < 0:
                continue
            start, end = int(part.offsets[term]), int(part.offsets[term + 1])
            if isinstance(part.docs, np.ndarray):  # in memory: slices, no copy but the shift
                docs, tfs = part.docs[start:end] + np.uint32(self.bases[p]), part.tfs[start:end]
            else:
                docs = np.empty(end - start, dtype=np.uint32)
                tfs = np.empty(end - start, dtype=np.uint8)
                part.read(start, docs, tfs)
                docs += np.uint32(self.bases[p])
            if self.has_deleted[p]:
                keep = ~self.deleted[docs]
                docs, tfs = docs[keep], tfs[keep]
            if len(docs):
                docs_parts.append(docs)
                tfs_parts.append(tfs)
                idf = float(self.part_idf[p][term])
        if not docs_parts:
            return np.zeros(0, np.uint32), np.zeros(0, np.uint8), 0.0
        return np.concatenate(docs_parts), np.concatenate(tfs_parts), idf

    def lookup(self, tokens: Sequence[str] | np.ndarray) -> list[int]:
        """Not meaningful across segments: term ids are per segment."""
        raise NotImplementedError("LiveField has no global term ids; use gather()")


def _in_memory(arrays: FieldArrays) -> FieldArrays:
    """A small segment's postings read into memory; a large one's left to `pread`."""
    if isinstance(arrays.docs, NpyColumn) and len(arrays.docs) <= IN_MEMORY_POSTINGS:
        return replace(arrays, docs=arrays.docs[:], tfs=arrays.tfs[:])
    return arrays


def live_df(arrays: FieldArrays, deleted: np.ndarray) -> np.ndarray:
    """Each term's document frequency among a segment's live passages."""
    offsets = np.asarray(arrays.offsets)
    df = np.diff(offsets)
    if not deleted.any() or not len(df):
        return df
    gone = np.zeros(len(df), dtype=np.int64)
    term_of_start = np.searchsorted(offsets, np.arange(0, offsets[-1], READ_CHUNK), "right") - 1
    for n, first in enumerate(range(0, int(offsets[-1]), READ_CHUNK)):
        last = min(first + READ_CHUNK, int(offsets[-1]))
        docs = np.asarray(arrays.docs[first:last])
        hit = deleted[docs].astype(np.int64)
        # Each term's part of this slice, summed by term starts falling inside it.
        t0 = int(term_of_start[n])
        t1 = int(np.searchsorted(offsets, last, "left"))
        cuts = np.maximum(offsets[t0:t1], first) - first
        gone[t0:t1] += np.add.reduceat(hit, cuts)
    return df - gone


def _combined_idf(
    parts: Sequence[FieldArrays], masks: Sequence[np.ndarray], n_live: int, epsilon: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per segment, each of its terms' idf over the live passages of all segments, and its
    document frequency among the segment's own live passages."""
    dfs = [live_df(arrays, mask) for arrays, mask in zip(parts, masks, strict=True)]
    keys = np.concatenate([np.asarray(a.keys)[df > 0] for a, df in zip(parts, dfs, strict=True)])
    counts = np.concatenate([df[df > 0] for df in dfs])
    vocabulary, where = np.unique(keys, return_inverse=True)
    df_all = np.zeros(len(vocabulary), dtype=np.int64)
    np.add.at(df_all, where, counts)
    idf = okapi_idf(df_all, n_live, epsilon)
    out = []
    for arrays, df in zip(parts, dfs, strict=True):
        keys_here = np.asarray(arrays.keys)
        at = np.searchsorted(vocabulary, keys_here).clip(max=max(len(vocabulary) - 1, 0))
        out.append(np.where(df > 0, idf[at] if len(idf) else 0.0, 0.0))
    return out, dfs


__all__ = ["LiveField", "live_df"]
