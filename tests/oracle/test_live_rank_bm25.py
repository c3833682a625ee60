"""A field of several segments with deleted passages scores like rank-bm25 over the live ones."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from retrieval.fieldbuild import build_field
from retrieval.index import BM25Params
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
    ids, scores = field.top(postings, 10)
    touched = [i for i in range(len(live)) if any(t in live[i] for t in query)]
    best = sorted(touched, key=lambda i: (-expected[i], i))[:10]
    assert list(ids) == [int(alive[i]) for i in best]
    np.testing.assert_allclose(scores, expected[best], atol=1e-6)
    np.testing.assert_allclose(field.scores_for(postings, ids), scores, atol=1e-9)
