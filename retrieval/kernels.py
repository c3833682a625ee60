"""Compiled inner loops of "BM25 index → ranked passages": numpy arrays in, the top k out.

`top_k` scores a query's postings term by term (document-at-a-time would need iterators this
layout does not have) with MaxScore pruning: terms are taken in the order the postings come in
(`index.scan_order`: fewest postings for their highest weight first), and as soon as the terms
left could not lift a passage that has not been seen yet above
the current k-th best score, the remaining terms' postings are only looked up (binary search)
for the passages already seen that can still reach it (the bar first raised to the final
scores of the k best so far, their remaining weights looked up); after each such term the k-th
best is worked out again and the passages out of reach leave. Scores stay exactly rank-bm25's:
pruning only skips passages that cannot reach the top k. Scratch arrays the size of the
passage count are reused per thread, so a query allocates nothing in proportion to its
postings.
Document-at-a-time scoring in windows of passage ids was tried and was slower at the depth the
fused ranking asks for (benchmarks/RESULTS.md, "Issue 15, second pass").

The loops are C (`retrieval/_kernels.c`, the extension `retrieval._kernels`, built when the
package is installed); this module gives them numpy arrays and makes room for their results.
C in place of numba keeps LLVM out of the process (about 120 MB resident, and 0.6 s on a fresh
process's first query) and keeps every score's bits: the sums run in the same order.

Six loops are the next step's, "ranked passages → answer": `held_sums` sums the question's
words and bigrams that each sentence of a passage and each run of three holds, `span_runs` lays
out the answer sentence's candidate spans and `edge_sides` the question at their edges,
`span_columns` fills in their feature table (`retrieval.reader.span_table`; the Python and numpy
statements of the spans, edges and columns, tests/span_numpy.py, are the oracle they are
checked against, bit for bit), `forest_sums` takes them through the reader's boosted trees
(`retrieval.reader.Trees`), laid out by `Forest`, and `span_f1` compares the likeliest spans.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retrieval import _kernels

BlockArrays = tuple[np.ndarray, np.ndarray, np.ndarray, int, float, float, bool]
Scoring = tuple[np.ndarray, np.ndarray]  # passage lengths (uint16 or uint32) and the ratio table
Board = tuple[np.ndarray, int]  # a board two calls share (`new_board`), and this call's half


def top_k(
    docs: np.ndarray,
    tfs: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    idfs: np.ndarray,
    upper: np.ndarray,
    scoring: Scoring,
    k: int,
    scores: np.ndarray,
    slots: np.ndarray,
    cand: np.ndarray,
    passages: tuple[int, int] | None = None,
    board: Board | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Best k (passage ids, scores), best first, ties by lower id; among the passages
    `passages` = (first, end) only, if given (the best k of all are the best k of the best k
    of each part of them).

    `board` = (array, half) is shared by two calls ranking two halves of the passages at once
    (`new_board`): each posts its k best partial scores there and cuts with the k-th best of
    both halves', so a call may then return fewer than k, or passages below the k-th best of
    its own half, but never leaves out one of the best k of both halves together: merged,
    the two calls' results hold the best k of all.

    Term t's postings are `docs[starts[t]:ends[t]]` with their frequencies in `tfs`: the
    field's whole arrays, read in place (`Field.gather`), or a buffer the terms' postings were
    copied into; terms ordered by `upper` (their highest weight) descending. `scoring` is the
    field's passage lengths (uint16, or uint32 when one is 65,536 or more) and its table of
    tf (k1 + 1) / (tf + norm) by frequency and length (`Field.scoring`, 256 rows): a posting
    weighs idf times its entry. Scratch arrays of the passage count, so that a question
    allocates nothing in proportion to its postings: `cand` (uint32 ids) and `scores` hold the
    candidates and their scores so far, side by side (the passes over all candidates read them
    in order; a cut moves the last kept into a cut one's place); `slots` (uint32), zeroed, holds
    each passage's place among the candidates + 1, and is left zeroed on return.
    """
    lengths, ratios = scoring
    best_docs, best_scores = _room(k, len(lengths))
    found = _kernels.top_k(
        docs, tfs, starts, ends, idfs, upper, lengths, ratios, k, scores, slots, cand, best_docs,
        best_scores, *(passages or (0, len(lengths))), *(board or (None, 0)),
    )  # fmt: skip
    return best_docs[:found], best_scores[:found]


def new_board(k: int) -> np.ndarray:
    """A board for two `top_k` calls of k each: per half a sequence number and k scores."""
    return np.zeros(2 * (k + 1), dtype=np.uint64)


def top_k_blocks(
    docs: np.ndarray,
    tfs: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    idfs: np.ndarray,
    upper: np.ndarray,
    scoring: Scoring,
    k1: float,
    k: int,
    scores: np.ndarray,
    slots: np.ndarray,
    cand: np.ndarray,
    blocks: BlockArrays,
    passages: tuple[int, int] | None = None,
    board: Board | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` with block-max bounds: best k (passage ids, scores), best first, ties by lower id.

    `blocks` = (first block of each query term, highest frequency and shortest passage of
    every block of `block` postings, b, average length, whether the bounds hold): each block's
    bound is worked out at query time from raw counts. While the first terms are added up, a
    block whose bound plus every later term's highest weight is below the current k-th best
    can bring in no new passage: only passages seen already take its weights (in term order,
    so scores stay bit-identical to `top_k`'s). The rest, `passages` and `board` are
    `top_k`'s.
    """
    lengths, ratios = scoring
    best_docs, best_scores = _room(k, len(lengths))
    found = _kernels.top_k_blocks(
        docs, tfs, starts, ends, idfs, upper, lengths, ratios, k1, k, scores, slots, cand,
        best_docs, best_scores, *blocks, *(passages or (0, len(lengths))),
        *(board or (None, 0)),
    )  # fmt: skip
    return best_docs[:found], best_scores[:found]


def scores_of(
    docs: np.ndarray,
    tfs: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    idfs: np.ndarray,
    scoring: Scoring,
    targets: np.ndarray,
) -> np.ndarray:
    """Exact scores of the given passages (`targets`, uint32 ids), by binary search in each
    term's postings."""
    out = np.zeros(len(targets))
    _kernels.scores_of(docs, tfs, starts, ends, idfs, *scoring, targets, out)
    return out


def drop_pages(mapping: mmap.mmap) -> None:
    """Unmap a read-only file mapping's pages from the process (they stay in the OS cache),
    without holding the GIL (Python's `mmap.madvise` holds it)."""
    _kernels.drop_pages(mapping)


def span_columns(
    table: np.ndarray,
    spans: np.ndarray,
    in_question: np.ndarray,
    text: np.ndarray,
    segments: np.ndarray,
    punct: np.ndarray,
    settled: np.ndarray,
    codes: np.ndarray,
    places: np.ndarray,
    bounds: np.ndarray,
    tails: np.ndarray,
    logs: np.ndarray,
    layout: np.ndarray,
) -> None:
    """Fill in a sentence's span table (spans × columns, zeroed) but for what `text` holds
    already (`retrieval.reader.span_table` makes every argument): `spans` = starts, ends, first
    and last segments (−1 for a span a pattern matched), one after the other; each span's
    `in_question` share; `text`, spans × 13 (`reader._span_text_parts`); each segment's flags
    and a 0 after them; per character, padded by one each side, whether it is punctuation and
    whether it is "settled"; the code points; the question's `places` in the sentence by set
    (`reader._places`); `tails` (`reader._tails`); log1p of 0 … n or more; `layout`
    (`reader._layout`). Every index is checked before the loops run; a bad one is a
    ValueError."""
    _kernels.span_columns(
        table.reshape(-1), spans, in_question, text.reshape(-1), segments, punct, settled,
        codes, places, bounds, tails, logs, layout,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Forest:
    """A tree ensemble laid out for `forest_sums` (QuickScorer, Lucchese et al., SIGIR 2015).

    Every split of every tree, sorted by feature and then by threshold (`starts[g]` to
    `starts[g + 1]` are feature g's), with its tree and the mask of that tree's leaves a row
    can still reach when it goes right there: each tree's leaves are numbered left to right,
    so the left subtree a split rules out is a run of bits. Leaf values are kept in that
    order, tree after tree (`first[t]` to `first[t + 1]`). A tree has at most 64 leaves.
    """

    n_features: int
    starts: np.ndarray  # int64, n_features + 1
    thresholds: np.ndarray  # float64 per split
    trees: np.ndarray  # int64 per split
    masks: np.ndarray  # uint64 per split
    values: np.ndarray  # float64 per leaf
    first: np.ndarray  # int64, trees + 1

    @classmethod
    def of(
        cls,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        n_features: int,
    ) -> Forest:
        """The layout of trees in flat arrays, LightGBM's: per split (of every tree)
        `feature`, `threshold`, `left` and `right`, per leaf `value`, per tree `roots`. Split
        i sends a row to `left[i]` when its `feature[i]` is at most `threshold[i]`, else to
        `right[i]`; a child or root c ≥ 0 is split c, c < 0 is leaf ~c. Trees whose walks
        would not end (a child before its parent), or that share a node, are a ValueError."""
        feature, left, right, roots = (
            np.asarray(a, dtype=np.int64) for a in (feature, left, right, roots)
        )
        threshold, value = np.asarray(threshold, np.float64), np.asarray(value, np.float64)
        _check_trees(feature, threshold, left, right, roots, len(value), n_features)
        n_splits, n_leaves = len(feature), len(value)
        lefts, rights = left.tolist(), right.tolist()
        # Leaves under each split, children first (a child comes after its parent).
        under = [0] * n_splits
        for c in range(n_splits - 1, -1, -1):
            a, b = lefts[c], rights[c]
            under[c] = (under[a] if a >= 0 else 1) + (under[b] if b >= 0 else 1)
        # Each node's tree and the position of its first leaf in the tree, parents first.
        at = [0] * (n_splits + n_leaves)  # splits, then leaves (leaf ~c at n_splits + ~c)
        tree = [0] * (n_splits + n_leaves)
        for t, root in enumerate(roots.tolist()):
            tree[root if root >= 0 else n_splits + ~root] = t
        masks = []
        for c in range(n_splits):
            a, b = lefts[c], rights[c]
            a = a if a >= 0 else n_splits + ~a
            b = b if b >= 0 else n_splits + ~b
            ruled_out = under[a] if a < n_splits else 1  # the left subtree's leaves
            at[a], at[b] = at[c], at[c] + ruled_out
            tree[a] = tree[b] = tree[c]
            masks.append(_ALL_LEAVES & ~(((1 << ruled_out) - 1) << at[c]))
        leaf_at = np.asarray(at[n_splits:], dtype=np.int64)
        leaf_tree = np.asarray(tree[n_splits:], dtype=np.int64)
        counts = np.bincount(leaf_tree, minlength=len(roots))
        if len(counts) and counts.max() > 64:
            raise ValueError("a tree may have at most 64 leaves")
        first = np.zeros(len(roots) + 1, dtype=np.int64)
        np.cumsum(counts, out=first[1:])
        values = np.empty(n_leaves)
        values[first[leaf_tree] + leaf_at] = value
        order = np.lexsort((threshold, feature))
        starts = np.searchsorted(feature[order], np.arange(n_features + 1)).astype(np.int64)
        trees = np.asarray(tree[:n_splits], dtype=np.int64)[order]
        return cls(n_features, starts, threshold[order], trees,
                   np.array(masks, dtype=np.uint64)[order], values, first)  # fmt: skip


_ALL_LEAVES = (1 << 64) - 1


def _check_trees(
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    roots: np.ndarray,
    n_leaves: int,
    n_features: int,
) -> None:
    """Refuse flat trees a walk could loop in or leave: each split's children come after it
    (or are leaves), within the arrays, and every split and leaf is in one tree once."""
    n = len(feature)
    if n_features < 1:
        raise ValueError("n_features must be positive")
    if not len(threshold) == len(left) == len(right) == n:
        raise ValueError("feature, threshold, left and right must have one length")
    if np.any((feature < 0) | (feature >= n_features)):
        raise ValueError("a split's feature must be a column of the rows")
    at = np.arange(n)
    for child in (left, right):
        if not np.all(np.where(child >= 0, (child > at) & (child < n), ~child < n_leaves)):
            raise ValueError("a split's children must be later splits or leaves")
    if not np.all(np.where(roots >= 0, roots < n, ~roots < n_leaves)):
        raise ValueError("roots must be splits or leaves")
    nodes = np.concatenate([left, right, roots])
    splits = np.bincount(nodes[nodes >= 0], minlength=n)
    leaves = np.bincount(~nodes[nodes < 0], minlength=n_leaves)
    if np.any(splits != 1) or np.any(leaves != 1):
        raise ValueError("every split and leaf must be in one tree, once")


def forest_sums(rows: np.ndarray, forest: Forest) -> np.ndarray:
    """Each row's sum over a tree ensemble of the leaf it reaches in every tree, added in tree
    order. One call takes every row (rows × features) through every tree in C: numpy over
    all rows at once would cost calls per tree level."""
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    out = np.empty(len(rows))
    _kernels.forest_sums(
        rows.reshape(-1), forest.n_features, forest.starts, forest.thresholds, forest.trees,
        forest.masks, forest.values, forest.first, out,
    )  # fmt: skip
    return out


def span_runs(
    lengths: np.ndarray,
    stops: np.ndarray,
    bad_first: np.ndarray,
    bad_last: np.ndarray,
    matched: np.ndarray,
    n_chars: int,
    segments: int,
    chars: int,
    long_segments: int,
    long_chars: int,
    out: np.ndarray,
) -> int:
    """The candidate spans of a sentence of `n_chars` characters (`reader.span_candidates`)
    into `out` (rows of start, end, first and last segment), in the order they are found;
    returns how many. From each segment (its length in `lengths`, int64) that is not
    `bad_first`: the runs of up to `segments` segments and `chars` characters, within its
    clause (up to the first segment that `stops` it), that end on a segment that is not
    `bad_last`, then the run that ends right before the stop when it has more segments, up to
    `long_segments` and `long_chars`. Then the spans a pattern `matched` (start, end pairs,
    int64, flat; segments −1) that are not among those found before. `out` must have room for
    len(lengths) * (segments + 1) + len(matched) / 2 rows."""
    return _kernels.span_runs(
        lengths, stops, bad_first, bad_last, matched, n_chars, segments, chars, long_segments,
        long_chars, out.reshape(-1),
    )  # fmt: skip


def edge_sides(bare: str, kept: np.ndarray, left: str, right: str, question: str) -> np.ndarray:
    """The question at the edges a span can have in a sentence (`reader._span_text_parts`):
    offsets × (as a start, as an end) × (how many characters on that side are the question's
    `left` of its question word, at most 6; how many occur together in `question`, at most 8,
    / 8). `bare` is the sentence without punctuation, `kept` for each offset of the sentence
    how many characters before it `bare` holds; 0 where the character beside the edge is not
    one of the question's."""
    out = np.empty((2, len(kept), 2))
    _kernels.edge_sides(
        _codes(bare), np.asarray(kept, dtype=np.int64), _codes(left), _codes(right),
        _codes(question), out.reshape(-1),
    )  # fmt: skip
    return out


def _codes(text: str) -> np.ndarray:
    """A string's code points (uint32)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def held_sums(
    needles: Sequence[str], weights: Sequence[float] | None, texts: Sequence[str]
) -> list[float]:
    """For each text, the weights of the needles it holds (`needle in text`) summed in the
    needles' order from 0.0, the bits of `sum(w for n, w in zip(needles, weights) if n in
    text)`; with `weights` None, how many it holds. The reader asks this of every sentence of
    a passage and of their windows, a few dozen searches each, which Python's generators
    cost more than the searches."""
    return _kernels.held_sums(needles, weights, texts)


def span_f1(starts: np.ndarray, ends: np.ndarray, likely: np.ndarray) -> np.ndarray:
    """Spans × likely spans: the F1 of each span (`starts`, `ends`: character offsets in one
    sentence) against each of the spans `likely` indexes, 2 overlap / (both lengths), with
    numpy's bits (int64 operands made double, one division)."""
    out = np.empty((len(starts), len(likely)))
    _kernels.span_f1(
        np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64),
        np.asarray(likely, dtype=np.int64),
        out.reshape(-1),
    )
    return out


def _block_bound(
    idf: float, max_tf: int, min_len: int, k1: float, b: float, avgdl: float
) -> float:
    """Highest weight a block can hold: the weight grows with the frequency and falls with the
    passage length; a hair above, so that rounding never makes it a little low."""
    return _kernels.block_bound(idf, int(max_tf), int(min_len), k1, b, avgdl)


def _room(k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Room for the best k of `size` passages: ids and scores."""
    n = max(min(k, size), 0)
    return np.empty(n, dtype=np.int64), np.empty(n)
