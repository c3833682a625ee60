"""Compiled inner loops of "BM25 index → ranked passages": numpy arrays in, the top k out.

`top_k` scores a query's postings term by term (document-at-a-time would need iterators this
layout does not have) with MaxScore pruning: terms are taken from the highest possible weight
down, and as soon as the terms left could not lift a passage that has not been seen yet above
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

`forest_sums` is the one loop of the next step, "ranked passages → answer": it walks the span
candidates of the answer sentence through the reader's boosted trees (`retrieval.reader.Trees`).
"""

from __future__ import annotations

import numpy as np

from retrieval import _kernels

BlockArrays = tuple[np.ndarray, np.ndarray, np.ndarray, int, float, float, bool]
Scoring = tuple[np.ndarray, np.ndarray]  # passage lengths (uint16 or uint32) and the ratio table
Board = tuple[np.ndarray, int]  # a board two calls share (`new_board`), and this call's half


def top_k(
    docs: np.ndarray,
    tfs: np.ndarray,
    bounds: np.ndarray,
    idfs: np.ndarray,
    upper: np.ndarray,
    scoring: Scoring,
    k: int,
    scores: np.ndarray,
    seen: np.ndarray,
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

    `docs`/`tfs` hold the query terms' postings one after the other (`bounds[t]:bounds[t+1]`),
    terms ordered by `upper` (their highest weight) descending. `scoring` is the field's
    passage lengths (uint16, or uint32 when one is 65,536 or more) and its table of
    tf (k1 + 1) / (tf + norm) by frequency and length (`Field.scoring`, 256 rows): a posting
    weighs idf times its entry. `scores` and `seen` are zeroed scratch arrays of the passage
    count, left zeroed on return; `cand` is scratch of the same length (the passages seen,
    uint32 ids), so that a question allocates nothing in proportion to its postings.
    """
    lengths, ratios = scoring
    best_docs, best_scores = _room(k, len(lengths))
    found = _kernels.top_k(
        docs, tfs, bounds, idfs, upper, lengths, ratios, k, scores, seen, cand, best_docs,
        best_scores, *(passages or (0, len(lengths))), *(board or (None, 0)),
    )  # fmt: skip
    return best_docs[:found], best_scores[:found]


def new_board(k: int) -> np.ndarray:
    """A board for two `top_k` calls of k each: per half a sequence number and k scores."""
    return np.zeros(2 * (k + 1), dtype=np.uint64)


def top_k_blocks(
    docs: np.ndarray,
    tfs: np.ndarray,
    bounds: np.ndarray,
    idfs: np.ndarray,
    upper: np.ndarray,
    scoring: Scoring,
    k1: float,
    k: int,
    scores: np.ndarray,
    seen: np.ndarray,
    cand: np.ndarray,
    blocks: BlockArrays,
    passages: tuple[int, int] | None = None,
    board: Board | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`top_k` with block-max bounds: best k (passage ids, scores), best first, ties by lower id.

    `blocks` = (first block of each query term, highest frequency and shortest passage of
    every block of `block` postings, b, average length, whether the bounds hold): each block's
    bound is worked out at query time from raw counts. While the strong terms are added up, a
    block whose bound plus every weaker term's highest weight is below the current k-th best
    can bring in no new passage: only passages seen already take its weights (in term order,
    so scores stay bit-identical to `top_k`'s). The rest, `passages` and `board` are
    `top_k`'s.
    """
    lengths, ratios = scoring
    best_docs, best_scores = _room(k, len(lengths))
    found = _kernels.top_k_blocks(
        docs, tfs, bounds, idfs, upper, lengths, ratios, k1, k, scores, seen, cand, best_docs,
        best_scores, *blocks, *(passages or (0, len(lengths))), *(board or (None, 0)),
    )  # fmt: skip
    return best_docs[:found], best_scores[:found]


def scores_of(
    docs: np.ndarray,
    tfs: np.ndarray,
    bounds: np.ndarray,
    idfs: np.ndarray,
    scoring: Scoring,
    targets: np.ndarray,
) -> np.ndarray:
    """Exact scores of the given passages (`targets`, uint32 ids), by binary search in each
    term's postings."""
    out = np.zeros(len(targets))
    _kernels.scores_of(docs, tfs, bounds, idfs, *scoring, targets, out)
    return out


def forest_sums(
    rows: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
) -> np.ndarray:
    """Each row's sum over a tree ensemble of the leaf it reaches in every tree, in tree order.

    The trees are flat arrays, LightGBM's layout: per split (of every tree) `feature`,
    `threshold`, `left` and `right`, per leaf `value`, per tree `roots`. Split i sends a row
    to `left[i]` when its `feature[i]` is at most `threshold[i]`, else to `right[i]`; a child
    or root c ≥ 0 is split c, c < 0 is leaf ~c. One call walks every row (rows × features)
    through every tree in C: numpy over all rows at once would cost calls per tree level.
    """
    rows = np.ascontiguousarray(rows, dtype=np.float64)
    out = np.empty(len(rows))
    _kernels.forest_sums(
        rows.reshape(-1), rows.shape[1], feature, threshold, left, right, value, roots, out
    )
    return out


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
