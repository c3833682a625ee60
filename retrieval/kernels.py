"""Compiled inner loops of "BM25 index → ranked passages" (numba, compiled once and cached).

`top_k` scores a query's postings term by term (document-at-a-time would need iterators this
layout does not have) with MaxScore pruning: terms are taken from the highest possible weight
down, and as soon as the terms left could not lift a passage that has not been seen yet above
the current k-th best score, the remaining terms' postings are only looked up (binary search)
for the passages already seen that can still reach it; after each such term the k-th best is
worked out again and the passages out of reach leave. Scores stay exactly rank-bm25's: pruning
only skips passages that cannot reach the top k. Scratch arrays the size of the passage count
are reused per thread, so a query allocates nothing in proportion to its postings.
Document-at-a-time scoring in windows of passage ids was tried and was slower at the depth the
fused ranking asks for (benchmarks/RESULTS.md, "Issue 15, second pass").
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _weight(idf: float, tf: float, norm: float, k1: float) -> float:
    return idf * (tf * (k1 + 1.0) / (tf + norm))


@njit(cache=True, nogil=True)
def _kth_best(scores: np.ndarray, cand: np.ndarray, count: int, k: int) -> float:
    """The k-th highest score among the candidates (-inf if fewer than k): one pass, keeping
    the best k in an ascending array; most candidates cost one comparison."""
    if count < k:
        return -np.inf
    best = np.full(k, -np.inf)
    for i in range(count):
        s = scores[cand[i]]
        if s <= best[0]:
            continue
        j = 1
        while j < k and best[j] < s:
            best[j - 1] = best[j]
            j += 1
        best[j - 1] = s
    return best[0]


@njit(cache=True, nogil=True)
def _probe(docs, tfs, start, end, idf, k1, norm, scores, seen, live, n_live):  # type: ignore[no-untyped-def]
    """Add one term's weights to the live passages' scores.

    Few live passages: look each up (binary search). Many: one pass over the postings, adding
    to every passage still marked seen, which by now are the live ones.
    """
    length = end - start
    if n_live * (np.log2(length + 1) + 1) < length:
        for i in range(n_live):
            d = live[i]
            j = start + np.searchsorted(docs[start:end], d)
            if j < end and docs[j] == d:
                scores[d] += _weight(idf, float(tfs[j]), norm[d], k1)
    else:
        for j in range(start, end):
            d = docs[j]
            if seen[d]:
                scores[d] += _weight(idf, float(tfs[j]), norm[d], k1)


@njit(cache=True, nogil=True)
def top_k(docs, tfs, bounds, idfs, upper, norm, k1, k, scores, seen, cand):  # type: ignore[no-untyped-def]
    """Best k (passage ids, scores), best first, ties by lower id.

    `docs`/`tfs` hold the query terms' postings one after the other (`bounds[t]:bounds[t+1]`),
    terms ordered by `upper` (their highest weight) descending. `scores` and `seen` are zeroed
    scratch arrays of the passage count, left zeroed on return; `cand` is scratch of the same
    length (the passages seen), so that a question allocates nothing in proportion to its
    postings.
    """
    n_terms = len(bounds) - 1
    left = np.zeros(n_terms + 1)
    for t in range(n_terms - 1, -1, -1):
        left[t] = left[t + 1] + upper[t]
    count, t = 0, 0
    theta = -np.inf
    # The k-th best partial score is at most the weights added so far ("done"), and at most
    # theta as last computed plus the weights added since: done + slack, slack ≤ 0.
    slack = 0.0
    while t < n_terms and not left[t] < theta:
        idf = idfs[t]
        for j in range(bounds[t], bounds[t + 1]):
            d = docs[j]
            s = scores[d]
            if s == 0.0 and not seen[d]:  # a passage with a score was seen: skip the mask
                seen[d] = True
                cand[count] = d
                count += 1
            scores[d] = s + _weight(idf, float(tfs[j]), norm[d], k1)
        t += 1
        done = left[0] - left[t]
        # The k-th best costs a pass over the candidates: only when it could stop the scan.
        if t < n_terms and left[t] < done + slack:
            theta = _kth_best(scores, cand, count, k)
            slack = min(0.0, theta - done)
    return _finish(docs, tfs, bounds, idfs, k1, norm, scores, seen, cand, count, left, t, theta, k)


@njit(cache=True, nogil=True)
def _block_bound(idf, max_tf, min_len, k1, b, avgdl):  # type: ignore[no-untyped-def]
    """Highest weight a block can hold: the weight grows with the frequency and falls with the
    passage length; a hair above, so that rounding never makes it a little low."""
    tf = float(max_tf)
    return idf * (tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * min_len / avgdl))) * (1.0 + 1e-9)


@njit(cache=True, nogil=True)
def top_k_blocks(docs, tfs, bounds, idfs, upper, norm, k1, k, scores, seen, cand, blocks):  # type: ignore[no-untyped-def]
    """`top_k` with block-max bounds: best k (passage ids, scores), best first, ties by lower id.

    `blocks` = (first block of each query term, highest frequency and shortest passage of
    every block of `block` postings, b, average length, whether the bounds hold): each block's
    bound is worked out here, at query time, from raw counts. While the strong terms are added
    up, a block whose bound plus every weaker term's highest weight is below the current k-th
    best can bring in no new passage: only passages seen already take its weights (in term
    order, so scores stay bit-identical to `top_k`'s). The rest is `top_k`'s.
    """
    first, max_tf, min_len, block, b, avgdl, usable = blocks
    n_terms = len(bounds) - 1
    left = np.zeros(n_terms + 1)
    for t in range(n_terms - 1, -1, -1):
        left[t] = left[t + 1] + upper[t]
    count, t = 0, 0
    theta = -np.inf
    slack = 0.0  # as in top_k: the k-th best partial score is at most done + slack
    while t < n_terms and not left[t] < theta:
        idf = idfs[t]
        start, end = bounds[t], bounds[t + 1]
        for j0 in range(start, end, block):
            j1 = min(j0 + block, end)
            if usable and theta > -np.inf:
                at = first[t] + (j0 - start) // block
                if _block_bound(idf, max_tf[at], min_len[at], k1, b, avgdl) + left[t + 1] < theta:
                    for j in range(j0, j1):  # no new passage from here can reach the top k
                        d = docs[j]
                        if seen[d]:
                            scores[d] += _weight(idf, float(tfs[j]), norm[d], k1)
                    continue
            for j in range(j0, j1):
                d = docs[j]
                s = scores[d]
                if s == 0.0 and not seen[d]:
                    seen[d] = True
                    cand[count] = d
                    count += 1
                scores[d] = s + _weight(idf, float(tfs[j]), norm[d], k1)
        t += 1
        if t == n_terms:
            break
        done = left[0] - left[t]
        # The k-th best costs a pass over the candidates: only when it could stop the scan
        # (working it out for blocks to skip as well cost more than they saved, RESULTS.md).
        if left[t] < done + slack:
            theta = _kth_best(scores, cand, count, k)
            slack = min(0.0, theta - done)
    return _finish(docs, tfs, bounds, idfs, k1, norm, scores, seen, cand, count, left, t, theta, k)


@njit(cache=True, nogil=True)
def _worse(s1: float, d1: int, s2: float, d2: int) -> bool:
    """Whether (score s1, passage d1) ranks below (s2, d2): lower score, or tied and later."""
    return s1 < s2 or (s1 == s2 and d1 > d2)


@njit(cache=True, nogil=True)
def _select(scores, seen, live, n_live, k):  # type: ignore[no-untyped-def]
    """The k best of the live passages, best first; clears their scratch entries."""
    size = min(k, n_live)
    best_docs = np.empty(size, dtype=np.int64)
    best_scores = np.empty(size)
    worst = 0
    for i in range(n_live):
        d, s = live[i], scores[live[i]]
        if i < size:
            best_docs[i], best_scores[i] = d, s
            if i == 0 or _worse(s, d, best_scores[worst], best_docs[worst]):
                worst = i
            continue
        if not _worse(best_scores[worst], best_docs[worst], s, d):
            continue  # most passages fall here: one comparison each
        best_docs[worst], best_scores[worst] = d, s
        for j in range(size):
            if _worse(best_scores[j], best_docs[j], best_scores[worst], best_docs[worst]):
                worst = j
    for i in range(n_live):
        scores[live[i]] = 0.0
        seen[live[i]] = False
    by_doc = np.argsort(best_docs, kind="mergesort")
    order = by_doc[np.argsort(-best_scores[by_doc], kind="mergesort")]
    return best_docs[order], best_scores[order]


@njit(cache=True, nogil=True)
def scores_of(docs, tfs, bounds, idfs, norm, k1, targets):  # type: ignore[no-untyped-def]
    """Exact scores of the given passages (binary search in each term's postings)."""
    out = np.zeros(len(targets))
    for t in range(len(bounds) - 1):
        start, end = bounds[t], bounds[t + 1]
        for i in range(len(targets)):
            d = targets[i]
            j = start + np.searchsorted(docs[start:end], d)
            if j < end and docs[j] == d:
                out[i] += _weight(idfs[t], float(tfs[j]), norm[d], k1)
    return out


@njit(cache=True, nogil=True)
def _finish(docs, tfs, bounds, idfs, k1, norm, scores, seen, cand, count, left, t, theta, k):
    """The top k once term `t` is reached: with terms left, they can lift no unseen passage
    above theta, so only the passages that can still reach it are looked up in their postings.
    After each term theta is worked out again over those passages (their scores only grow), and
    the ones that can no longer reach it leave, so each weaker term is looked up for fewer."""
    n_terms = len(bounds) - 1
    n_live = _keep_reaching(scores, seen, cand, count, left[t], theta)
    for u in range(t, n_terms):
        _probe(docs, tfs, bounds[u], bounds[u + 1], idfs[u], k1, norm, scores, seen, cand, n_live)
        if u + 1 < n_terms and n_live > k:
            theta = max(theta, _kth_best(scores, cand, n_live, k))
            n_live = _keep_reaching(scores, seen, cand, n_live, left[u + 1], theta)
    return _select(scores, seen, cand, n_live, k)


@njit(cache=True, nogil=True)
def _keep_reaching(scores, seen, cand, count, rest, theta):  # type: ignore[no-untyped-def]
    """Move the candidates that can still reach theta (their score plus `rest`, the most the
    terms left can add, with a hair of margin for rounding) to the front of `cand`; clear the
    others from the scratch arrays. Returns how many are kept."""
    kept = 0
    for i in range(count):
        d = cand[i]
        if (scores[d] + rest) * (1.0 + 1e-9) >= theta:
            cand[kept] = d
            kept += 1
        else:
            scores[d] = 0.0
            seen[d] = False
    return kept
