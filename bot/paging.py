"""Pipeline step "ranked passages → answer" a page at a time: the paging of every front end.

A question's passages are shown a page at a time: the CLI shows one page, the REPL's `:more`
and Telegram's "更多" button the next ones. A `Page` says which passages (`size` of them after
the first `offset`); `ask_page` searches it, with one hit extra when the front end offers a
next page, and returns a `Paged`:

    paged = ask_page(searcher, Page(prepare("溧阳暑托班有多少家"), size=3))
    paged.outcome.result.hits   # ranks 1-3 (the answer sentence comes with the first page)
    paged.more()                # Page(offset=3, size=3), or None when no fourth hit exists
    paged.more(shown=1)         # a compact reply showed one: the next page starts at rank 2
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bot.engine import ask
from bot.questions import Outcome, Question
from retrieval.search import Searcher


@dataclass(frozen=True, slots=True)
class Page:
    """Which passages of a question to show: `size` of them, from rank `offset + 1` on."""

    question: Question
    size: int
    offset: int = 0

    def next(self) -> Page:
        """The page that follows this one, whether or not it holds any passage."""
        return replace(self, offset=self.offset + self.size)


@dataclass(frozen=True, slots=True)
class Paged:
    """One page searched: its outcome (at most `page.size` hits) and how many hits were found.

    `found` counts the extra hit searched for when peeking: it is what tells whether a next
    page has anything to show.
    """

    page: Page
    outcome: Outcome
    found: int

    def more(self, *, shown: int | None = None) -> Page | None:
        """The page after the first `shown` hits (default: all of them), or None when the search
        found no hit beyond them (it never does without `peek`: the REPL then pages blindly)."""
        count = self.page.size if shown is None else min(shown, self.page.size)
        if self.found <= count:
            return None
        return replace(self.page, offset=self.page.offset + count)


def ask_page(searcher: Searcher, page: Page, *, peek: bool = True) -> Paged:
    """Search one page; with `peek`, one hit extra, so that `Paged.more` knows what follows.

    Without `peek` (the CLI shows one page only) exactly `page.size` passages are searched, so
    that the answer sentence is taken from the passages shown.
    """
    wanted = page.size + 1 if peek else page.size
    outcome = ask(searcher, page.question, top_k=wanted, offset=page.offset)
    hits = outcome.result.hits
    result = replace(outcome.result, hits=hits[: page.size])
    return Paged(page, replace(outcome, result=result), found=len(hits))
