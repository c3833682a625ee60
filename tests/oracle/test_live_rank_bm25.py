"""A field of several segments with deleted passages scores like rank-bm25 over the live ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from retrieval.fieldbuild import build_field
from retrieval.index import BM25Params, Field
from retrieval.kernels import new_board
from retrieval.live import LiveField

WORDS = [f"w{i}" for i in range(30)]
documents = st.lists(st.sampled_from(WORDS), min_size=0, max_size=25)
segments = st.lists(
    st.lists(st.tuples(documents, st.booleans()), min_size=1, max_size=12), min_size=1, max_size=5
)


@settings(max_examples=150, deadline=None)
@given(segments, st.lists(st.sampled_from([*WORDS, "absent"]), min_size=1, max_size=6))
def test_live_field_equals_rank_bm25_on_the_live_passages(
    parts: list[list[tuple[list[str], bool]]], query: list[str]
) -> None:
    live = [doc for part in parts for doc, deleted in part if not deleted]
    if not live or not any(live):
        return
    params = BM25Params()
    arrays = [build_field([doc for doc, _ in part], params) for part in parts]
    masks = [np.array([deleted for _, deleted in part]) for part in parts]
    field = LiveField(arrays, masks, params)
    expected = BM25Okapi(live).get_scores(query)
    alive = np.flatnonzero(~np.concatenate(masks))  # global id of each live passage, in order
    np.testing.assert_allclose(field.get_scores(query)[alive], expected, atol=1e-6)
    postings = field.gather(query)
    touched = [i for i in range(len(live)) if any(t in live[i] for t in query)]
    best = sorted(touched, key=lambda i: (-expected[i], i))[:10]
    ids, scores = field.top(postings, 10)
    assert list(ids) == [int(alive[i]) for i in best]
    np.testing.assert_allclose(scores, expected[best], atol=1e-6)
    np.testing.assert_allclose(field.scores_for(postings, ids), scores, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_live_block_max_top_equals_rank_bm25_on_many_postings(seed: int) -> None:
    """Over a thousand postings in the kernels' MaxScore, deleted passages: rank-bm25's top 10."""
    rng = np.random.default_rng(seed)
    vocabulary = WORDS
    weights = np.linspace(30, 1, len(vocabulary))  # common and rare words
    parts = []
    for size in (900, 400, 150):
        docs = [
            list(rng.choice(vocabulary, size=rng.integers(1, 30), p=weights / weights.sum()))
            for _ in range(size)
        ]
        parts.append([(doc, bool(rng.random() < 0.2)) for doc in docs])
    live = [doc for part in parts for doc, deleted in part if not deleted]
    params = BM25Params()
    arrays = [build_field([doc for doc, _ in part], params) for part in parts]
    masks = [np.array([deleted for _, deleted in part]) for part in parts]
    field = LiveField(arrays, masks, params)
    alive = np.flatnonzero(~np.concatenate(masks))
    query = list(rng.choice(vocabulary[:12], size=3, replace=False))
    expected = BM25Okapi(live).get_scores(query)
    postings = field.gather(query)
    assert len(postings.docs) > 1_000 and np.all(postings.idf > 0)
    ids, scores = field.top(postings, 10)
    touched = [i for i in range(len(live)) if any(t in live[i] for t in query)]
    best = sorted(touched, key=lambda i: (-expected[i], i))[:10]
    assert list(ids) == [int(alive[i]) for i in best]
    np.testing.assert_allclose(scores, expected[best], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(200, 1500), min_size=1, max_size=3),
    st.floats(0.0, 0.4),
    st.sampled_from([1, 5, 10, 100]),
)
def test_pruned_kernels_keep_the_exact_top_k(
    seed: int, sizes: list[int], deleted_share: float, k: int
) -> None:
    """Long postings, a Zipf-like vocabulary and repeated passages (exact ties), one segment
    (block-max) or several with deletions (per-term bounds): the kernels' pruned top k is the
    dense ranking's, ids (ties by lower id) and score bits, and rank-bm25's scores; and so is
    the best of the tops of two parts of the passages, split anywhere, sharing a board."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(WORDS) + 1)
    parts = []
    for size in sizes:
        docs = [
            list(rng.choice(WORDS, size=rng.integers(1, 30), p=weights / weights.sum()))
            for _ in range(size)
        ]
        for i in np.flatnonzero(rng.random(size) < 0.2)[1:]:
            docs[i] = docs[rng.integers(i)]
        removed = rng.random(size) < (deleted_share if len(sizes) > 1 else 0.0)
        parts.append(list(zip(docs, removed.tolist(), strict=True)))
    params = BM25Params()
    arrays = [build_field([doc for doc, _ in part], params) for part in parts]
    masks = [np.array([gone for _, gone in part]) for part in parts]
    field = LiveField(arrays, masks, params) if len(parts) > 1 else Field(arrays[0], params)
    live = [doc for part in parts for doc, gone in part if not gone]
    alive = np.flatnonzero(~np.concatenate(masks))
    query = list(rng.choice(WORDS, size=rng.integers(1, 9)))
    postings = field.gather(query)
    ids, scores = field.top(postings, k)
    dense = field.get_scores(query)[alive]
    touched = [i for i in range(len(live)) if any(t in live[i] for t in query)]
    best = sorted(touched, key=lambda i: (-dense[i], i))[:k]
    assert ids.tolist() == alive[best].tolist()
    assert scores.tolist() == dense[best].tolist()
    np.testing.assert_allclose(scores, BM25Okapi(live).get_scores(query)[best], atol=1e-6)
    split, board = int(rng.integers(0, field.size + 1)), new_board(k)
    lower = field.top(postings, k, (0, split), (board, 0))
    upper = field.top(postings, k, (split, field.size), (board, 1))
    both_ids, both_scores = (
        np.concatenate([lower[0], upper[0]]),
        np.concatenate([lower[1], upper[1]]),
    )
    order = np.lexsort((both_ids, -both_scores))[:k]
    assert both_ids[order].tolist() == ids.tolist()
    assert both_scores[order].tobytes() == scores.tobytes()
