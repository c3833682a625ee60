"""Pipeline step "articles → passages": windows of whole sentences within one article.

An article's body is its paragraphs joined by "\\n"; every passage is a contiguous slice of that
body (`passage.text == body[source.start:source.end]`), made of whole sentences, packed up to
`max_chars`. A sentence longer than `max_chars` (an OCR line with no punctuation at all) is cut
into pieces of at most `max_chars`, at a comma or space where there is one.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator

from retrieval.models import Article, Passage, Source, passage_id

DEFAULT_MAX_CHARS = 1000  # chosen by benchmarks/sweep_quality.py

# A sentence ends after 。！？!?；; or … (with closing quotes/brackets that follow), or at a
# paragraph break; a full sentence only after 。！？!? or …, not at the ；that joins its clauses.
_SENTENCE_END = re.compile(r"[。！？!?；;…]+[”’」』）)\]】》\"']*|\n")
_FULL_SENTENCE_END = re.compile(r"[。！？!?…]+[”’」』）)\]】》\"']*|\n")
# Where an over-long sentence may be cut: after a comma-like mark or at a space.
_SOFT_BREAK = re.compile(r"[，,、：:]|\s")
_NEWLINE = re.compile("\n")


def sentence_spans(text: str, *, clauses: bool = True) -> Iterator[tuple[int, int]]:
    """Character spans of the sentences of a text (newlines never inside a span).

    With `clauses=False` a ；does not end one: 上游多山地；下游为平原。 is one sentence.
    """
    start = 0
    for match in (_SENTENCE_END if clauses else _FULL_SENTENCE_END).finditer(text):
        end = match.start() if match.group() == "\n" else match.end()
        if text[start:end].strip():
            yield start, end
        start = match.end()
    if text[start:].strip():
        yield start, len(text)


def _bounded(
    spans: Iterator[tuple[int, int]], text: str, max_chars: int
) -> Iterator[tuple[int, int]]:
    """The spans, with any longer than `max_chars` cut into pieces no longer than that."""
    for start, end in spans:
        while end - start > max_chars:
            limit = start + max_chars
            soft = [m.end() for m in _SOFT_BREAK.finditer(text, start + max_chars // 2, limit)]
            cut = soft[-1] if soft else limit
            yield start, cut
            start = cut
        yield start, end


def article_body(article: Article) -> str:
    """The text passages of an article are sliced from."""
    return "\n".join(article.paragraphs)


def split_passages(
    article: Article, *, file: str, max_chars: int = DEFAULT_MAX_CHARS
) -> list[Passage]:
    """Pack an article's sentences into passages of at most `max_chars` characters."""
    body = article_body(article)
    windows: list[tuple[int, int]] = []
    for start, end in _bounded(sentence_spans(body), body, max_chars):
        if windows and end - windows[-1][0] <= max_chars:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    breaks = [match.start() for match in _NEWLINE.finditer(body)]
    return [
        Passage(
            passage_id=passage_id(file, article.number, n),
            text=body[start:end],
            source=Source(
                file=file,
                title=article.title,
                paragraph=article.first_paragraph + bisect_left(breaks, start),
                start=start,
                end=end,
            ),
        )
        for n, (start, end) in enumerate(windows)
    ]
