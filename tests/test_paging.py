"""The one paging rule (`bot.paging`): a page of hits, one extra to know whether more follow."""

from __future__ import annotations

from bot.format import EXAMPLE_QUESTION
from bot.paging import Page, ask_page
from bot.questions import prepare
from retrieval.search import Searcher


def test_a_page_shows_its_size_and_knows_what_follows(seed_searcher: Searcher) -> None:
    page = Page(prepare(EXAMPLE_QUESTION), size=2)
    paged = ask_page(seed_searcher, page)
    assert [hit.rank for hit in paged.outcome.result.hits] == [1, 2]
    assert paged.outcome.result.answer is not None and paged.found == 3
    assert paged.more() == Page(page.question, size=2, offset=2) == page.next()
    assert paged.more(shown=1) == Page(page.question, size=2, offset=1)  # a compact reply
    later = ask_page(seed_searcher, page.next())
    assert [hit.rank for hit in later.outcome.result.hits] == [3, 4]
    assert later.outcome.result.answer is None  # the answer comes with the first page


def test_the_last_page_offers_no_next(seed_searcher: Searcher) -> None:
    page = Page(prepare(EXAMPLE_QUESTION), size=3, offset=10_000)
    paged = ask_page(seed_searcher, page)
    assert paged.outcome.result.hits == () and paged.more() is None


def test_without_peeking_exactly_the_page_is_searched(seed_searcher: Searcher) -> None:
    page = Page(prepare(EXAMPLE_QUESTION), size=1)
    paged = ask_page(seed_searcher, page, peek=False)
    assert paged.found == 1 and len(paged.outcome.result.hits) == 1
    assert paged.more() is None  # nothing was looked at beyond the page


def test_a_question_with_a_problem_is_not_searched(seed_searcher: Searcher) -> None:
    paged = ask_page(seed_searcher, Page(prepare("？？？"), size=3))
    assert not paged.outcome.searchable and paged.found == 0 and paged.more() is None
