"""The REPL's commands, through `answer_line` over the seeds' real index."""

from __future__ import annotations

from bot.format import EXAMPLE_QUESTION
from bot.repl import ReplState, answer_line
from retrieval.search import Searcher

TITLE = "溧阳工会爱心暑托班点亮多彩假期"


def test_answers_mark_the_question_words(seed_searcher: Searcher) -> None:
    reply, state = answer_line(EXAMPLE_QUESTION, ReplState(), seed_searcher, 3)
    assert "【暑托班】" in reply and "【溧阳】" in reply
    assert [rank for rank, _ in state.shown] == [1, 2, 3]


def test_open_shows_the_whole_article_of_a_passage_shown(seed_searcher: Searcher) -> None:
    _, state = answer_line(EXAMPLE_QUESTION, ReplState(), seed_searcher, 2)
    _, state = answer_line(":more", state, seed_searcher, 2)
    assert [rank for rank, _ in state.shown] == [1, 2, 3, 4]
    article, after = answer_line(":open 1", state, seed_searcher, 2)
    assert article.startswith(f"《{TITLE}》") and "爱心暑托班陆续开班" in article
    assert after == state
    for wrong in (":open", ":open 9", ":open x"):
        assert "Usage: :open N" in answer_line(wrong, state, seed_searcher, 2)[0]
    assert "none yet" in answer_line(":open 1", ReplState(), seed_searcher, 2)[0]
