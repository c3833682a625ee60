"""The fused ranking's shortcut (candidates that cannot be shown are never scored) changes
nothing: the same passages in the same order with the same scores, bit for bit, as scoring
every candidate of both fields' tops in both fields (the method before it)."""

from __future__ import annotations

import numpy as np
import pytest

import retrieval.index
from retrieval.evaluate import load_questions
from retrieval.index import top_k as best_first
from retrieval.search import Query, Searcher, _shown_from
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer
from tests.conftest import REPO, SHARED

CMRC = SHARED / "eval" / "cmrc2018_dev"


def _every_candidate_scored(
    searcher: Searcher, query: Query, wanted: int
) -> tuple[np.ndarray, np.ndarray]:
    """The fused scores as computed before the shortcut: the whole union, both fields."""
    depth = max(retrieval.search.FIELD_DEPTH, 4 * wanted)
    found = []
    for name, weight, tokens in (
        ("words", 1.0, query.words),
        ("bigrams", searcher.bigram_weight, query.bigrams),
    ):
        field = searcher.index.fields[name]
        postings = field.gather(tokens)
        ids, scores = field.top(postings, depth)
        if len(ids) and scores[0] > 0:
            found.append((field, weight, postings, ids, scores[0]))
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    candidates = np.unique(np.concatenate([item[3] for item in found]))
    fused = np.zeros(len(candidates))
    for field, weight, postings, _, best in found:
        fused += weight * (field.scores_for(postings, candidates) / best)
    return candidates, fused


def _assert_same_ranking(searcher: Searcher, questions: list[str]) -> None:
    for question in questions:
        query = searcher.query(question)
        for wanted in (3, 5, 10):
            shown = _shown_from(wanted)
            old_ids, old_scores = _every_candidate_scored(searcher, query, wanted)
            new_ids, fields = searcher._field_scores(searcher.index, query, wanted)
            new_scores = sum(
                (searcher._weight(name) * scores for name, scores in fields.items()),
                np.zeros(len(new_ids)),
            )
            old = best_first(old_scores, shown) if len(old_scores) else []
            new = best_first(new_scores, shown) if len(new_scores) else []
            assert old_ids[old].tolist() == new_ids[new].tolist(), question
            assert old_scores[old].tolist() == new_scores[new].tolist(), question


def test_seed_questions_rank_the_same(seed_searcher: Searcher) -> None:
    questions = [q.question for q in load_questions(SHARED / "eval" / "seed_qa.jsonl")]
    _assert_same_ranking(seed_searcher, [*questions, "溧阳", "的", "2023年 工会 托管"])


@pytest.fixture(scope="module")
def cmrc_searcher(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    tokenizer = Tokenizer.from_config(REPO / "config")
    folder = tmp_path_factory.mktemp("cmrc-index")
    build_index(CMRC / "archive", folder, tokenizer)
    return Searcher(open_index(folder), tokenizer)


@pytest.mark.skipif(not (CMRC / "questions.jsonl").is_file(), reason="needs ../shared")
def test_cmrc_questions_rank_the_same(cmrc_searcher: Searcher) -> None:
    questions = [q.question for q in load_questions(CMRC / "questions.jsonl")]
    _assert_same_ranking(cmrc_searcher, questions[::3])


def test_top_scores_equal_scores_for_bit_for_bit(seed_searcher: Searcher) -> None:
    """The shortcut takes a field's own top scores for the candidates it knows."""
    field = seed_searcher.index.fields["bigrams"]
    postings = field.gather(seed_searcher.query("溧阳工会爱心暑托班").bigrams)
    ids, scores = field.top(postings, 20)
    assert field.scores_for(postings, ids).tolist() == scores.tolist()


def test_best_first_breaks_ties_by_lower_index_at_the_cut_too() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        scores = rng.integers(0, 4, rng.integers(0, 40)).astype(float)
        k = int(rng.integers(1, 50))
        expected = np.lexsort((np.arange(len(scores)), -scores))[:k]
        assert best_first(scores, k).tolist() == expected.tolist()
