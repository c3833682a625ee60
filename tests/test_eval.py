"""Retrieval quality on the seed questions: the floor CI holds the project to."""

from __future__ import annotations

from retrieval.evaluate import evaluate, load_questions
from retrieval.search import Searcher
from tests.conftest import SHARED


def test_seed_questions_recall_floor(seed_searcher: Searcher) -> None:
    questions = load_questions(SHARED / "eval" / "seed_qa.jsonl")
    report = evaluate(questions, lambda q: seed_searcher.ask(q, top_k=5))
    assert report.total == 22
    assert report.recall[3] >= 20, report.as_dict()
