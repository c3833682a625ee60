"""Pipeline step "clean text → articles": split one file's cleaned paragraphs by headline.

Every paragraph is a headline, a byline or body text (`paragraph_kind`):

- headline: a markdown heading ("#"s stripped from the title) or a paragraph shaped like a
  headline (`looks_like_headline`: short, no 。;, inside). A "——" sub-headline is one too, so
  it joins the title of its article.
- byline: "记者 吴文龙", "□本报记者 梁亚杰", "据新华社"... (`is_byline`).
- body: everything else, news leads ("本报讯(记者 梁亚杰)10月21日,...") included.

Consecutive headlines make one title, joined by spaces. A headline with no body text after it
before the next title is body instead (a photo caption closing a file, a credit line such as
"金坛工会", the second line of a title-only pair), so no text is lost and no article is empty.
Text before the first title is an article with title None.

Bylines are neither titles nor body: they are not indexed. A byline closes an article, so body
text after it (with no new headline) is another article, with title None; its headline was lost
or printed elsewhere on the page. That keeps every body a contiguous run of the input
(`first_paragraph` + i), which passages rely on to say where they come from.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal

from retrieval.archive import is_byline, looks_like_headline
from retrieval.models import Article

Kind = Literal["title", "byline", "body"]

_HEADING_MARK = re.compile(r"^#+\s*")


def split_articles(paragraphs: list[str]) -> list[Article]:
    """Split one file's cleaned paragraphs into numbered articles with a title and a body."""
    kinds = _resolve([paragraph_kind(paragraph) for paragraph in paragraphs])
    articles: list[Article] = []
    for start, end in _sections(kinds):
        body_start = start
        while body_start < end and kinds[body_start] == "title":
            body_start += 1
        first, last = _trim_bylines(kinds, body_start, end)
        if first < last:
            articles.append(
                Article(
                    number=len(articles),
                    title=_title(paragraphs[start:body_start]),
                    paragraphs=tuple(paragraphs[first:last]),
                    first_paragraph=first,
                )
            )
    return articles


def paragraph_kind(paragraph: str) -> Kind:
    """Whether a cleaned paragraph reads as a headline, a byline or body text."""
    if is_byline(paragraph):
        return "byline"
    return "title" if looks_like_headline(paragraph) else "body"


def _resolve(kinds: list[Kind]) -> list[Kind]:
    """The kinds with every headline that no body follows (before the next title) made body."""
    resolved = list(kinds)
    body_ahead = False
    for i in reversed(range(len(resolved))):
        if resolved[i] == "title" and not body_ahead:
            resolved[i] = "body"
        if resolved[i] == "body":
            body_ahead = True
        elif resolved[i] == "title" and (i == 0 or resolved[i - 1] != "title"):
            # The top of a title run: the title above needs a body of its own.
            body_ahead = False
    return resolved


def _sections(kinds: list[Kind]) -> list[tuple[int, int]]:
    """[start, end) of each article's paragraphs, headlines included.

    A run of titles starts an article, and so does body text after a byline that closed
    earlier body text (an article whose headline was lost).
    """
    bounds = [0]
    has_body = False
    for i, kind in enumerate(kinds):
        previous = kinds[i - 1] if i else None
        opens_title = kind == "title" and previous != "title"
        if opens_title or (kind == "body" and previous == "byline" and has_body):
            bounds.append(i)
            has_body = False
        has_body = has_body or kind == "body"
    bounds.append(len(kinds))
    return [(start, end) for start, end in pairwise(bounds) if start < end]


def _trim_bylines(kinds: list[Kind], start: int, end: int) -> tuple[int, int]:
    """The range [start, end) without the bylines that open or close it."""
    while start < end and kinds[start] == "byline":
        start += 1
    while end > start and kinds[end - 1] == "byline":
        end -= 1
    return start, end


def _title(headlines: list[str]) -> str | None:
    """One title from consecutive headlines (markdown "#"s stripped), None if there are none."""
    parts = [_HEADING_MARK.sub("", headline) for headline in headlines]
    return " ".join(part for part in parts if part) or None
