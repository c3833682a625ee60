"""Plain frozen types passed between the pipeline steps (no behaviour beyond small helpers)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Document:
    """One archive file, decoded: `path` is relative to the archive folder, POSIX-style."""

    path: str
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    """One article of a file after cleaning: an optional headline and its body paragraphs.

    `first_paragraph` is the index (0-based, within the file's cleaned paragraphs) of the first
    body paragraph, so a passage can say where in the file it came from.
    """

    number: int
    title: str | None
    paragraphs: tuple[str, ...]
    first_paragraph: int


@dataclass(frozen=True, slots=True)
class Source:
    """Where a passage came from.

    `paragraph` is the 0-based index of the cleaned paragraph the passage starts in; `start` and
    `end` are character offsets of the passage inside that article's body text (its paragraphs
    joined by "\\n"). `date` is the page's date (`dates.page_date`), None when unknown.
    """

    file: str
    title: str | None
    paragraph: int
    start: int
    end: int
    date: datetime.date | None = None


def passage_id(file: str, article: int, number: int) -> str:
    """The stable id of a passage: "<file>#<article>.<n>" (`parse_passage_id` reads it back)."""
    return f"{file}#{article}.{number}"


def parse_passage_id(passage_id: str) -> tuple[str, int, int]:
    """File, article number and passage number of an id made by `passage_id`."""
    file, _, rest = passage_id.rpartition("#")
    article, _, number = rest.partition(".")
    return file, int(article), int(number)


@dataclass(frozen=True, slots=True)
class Passage:
    """A window of whole sentences from one article: what is indexed and shown to users."""

    passage_id: str  # stable: "<file>#<article>.<n>"
    text: str
    source: Source


@dataclass(frozen=True, slots=True)
class Hit:
    """A ranked passage: 1-based `rank`, its `score`, and the part to show.

    The score is the fused BM25 score, or the learned reader's probability that the passage is
    the right one when the reader ranked it; either way it falls with the rank.

    `snippet` is the (start, end) span of `passage.text` that best answers the question, whole
    sentences of at most a few hundred characters; None means the whole passage.
    """

    rank: int
    score: float
    passage: Passage
    snippet: tuple[int, int] | None = None

    @property
    def snippet_text(self) -> str:
        """The text to show: the snippet, marked with "…" where the passage goes on."""
        text = self.passage.text
        if self.snippet is None:
            return text
        start, end = self.snippet
        return (
            ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """The best answering sentence, with the character spans to highlight (numbers, names).

    `short` is the (start, end) span of `sentence` that answers exactly (40多家, 1903年), or None
    when the reader is not confident of one.
    """

    sentence: str
    highlights: tuple[tuple[int, int], ...]
    passage_id: str
    short: tuple[int, int] | None = None

    @property
    def short_text(self) -> str | None:
        """The exact answer, when there is one."""
        return None if self.short is None else self.sentence[self.short[0] : self.short[1]]


@dataclass(frozen=True, slots=True)
class Result:
    """What a front end renders for one question: the answer sentence and the ranked hits.

    `searchable` is False when the question held no word the index searches for (only
    stopwords or punctuation), so a reply can say why nothing was found. `terms` are the words
    searched for (the question's and its synonyms', folded), so a reply can mark them.
    """

    question: str
    answer: Answer | None
    hits: tuple[Hit, ...]
    searchable: bool = True
    terms: tuple[str, ...] = ()
