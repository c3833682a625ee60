"""Pipeline step "ranked passages → answer": the one sentence that best answers the question.

Each sentence of the best passages is scored by how much of the question it covers (question
words weighted by their length, and character bigrams; a little of the sentence before it
counts too, since the subject is often named there), by the rank of its passage, and by whether
it holds what the question asks for: for 多少家/几名 a number with that measure word, for
占多少/比例 a share, for 哪一年 a year, for 什么时候 a date. Numbers in the chosen sentence are
highlighted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retrieval.chars import is_han
from retrieval.models import Answer, Hit
from retrieval.passages import sentence_spans
from retrieval.tokenize import fold

if TYPE_CHECKING:  # query.py builds on `asks_for` below
    from retrieval.query import Query

SENTENCE_POOL = 3  # sentences are taken from this many top passages
CONTEXT_WEIGHT = 0.3  # how much the previous sentence's coverage counts
RANK_PENALTY = 0.15  # per rank below the first passage

_CN = "零〇一二两三四五六七八九十百千万亿"
_AMOUNT = rf"(?:\d[\d,.]*|[{_CN}]{{2,}}|[{_CN}]分之[{_CN}]+)(?:\s*[余多万亿千百])*"
NUMBER = re.compile(
    rf"(?:[近约超逾达共第]|超过|将近)?{_AMOUNT}"
    r"(?:\s*(?:%|‰|[个名家场座项件人次年月日号天米元台辆户所条只倍届期批位岁吨斤亩]+))?"
)
_YEAR = re.compile(r"(?:1[89]|20)\d{2}\s*年")
_DATE = re.compile(r"\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|(?:1[89]|20)\d{2}\s*年")
_SHARE = re.compile(r"\d\s*[%‰]|分之|\d\s*成|一半|半数")
_ANY_NUMBER = re.compile(rf"{_AMOUNT}\s*(?:[%‰]|[^\d\s\W])")
_ASKS_COUNT = re.compile(r"(?:多少|几)\s*([^\s\W\d])")
_ASKS = (
    (re.compile(r"哪一?年|何年|什么年份|年份"), _YEAR),
    (re.compile(r"什么时候|何时|哪天|几月|几号|日期"), _DATE),
    (re.compile(r"占.{0,6}多少|比例|占比|百分之|比重|份额"), _SHARE),
)
_NOT_UNITS = set("的是了在有个")  # 多少的…, 几个 is handled as a generic count


@dataclass(frozen=True, slots=True)
class Wanted:
    """What an answer must hold: a pattern that fits exactly, and one that nearly does."""

    exact: re.Pattern[str]
    near: re.Pattern[str] | None = None


def wanted(question: str) -> Wanted | None:
    """What an answer to this question must contain, if the question says (count, year, …)."""
    return asks_for(fold(question))


def asks_for(folded: str) -> Wanted | None:
    """`wanted` of a question that `fold` has already folded."""
    for asks, pattern in _ASKS:
        if asks.search(folded):
            return Wanted(pattern)
    count = _ASKS_COUNT.search(folded)
    if count is None:
        return Wanted(_ANY_NUMBER) if re.search(r"多大|多长|多高|多久|数量", folded) else None
    unit = count.group(1)
    if unit in _NOT_UNITS or not is_han(unit):
        return Wanted(_ANY_NUMBER)
    return Wanted(re.compile(rf"{_AMOUNT}\s*{re.escape(unit)}"), near=_ANY_NUMBER)


def coverage(text: str, words: Sequence[str], grams: Set[str]) -> float:
    """Share of the question covered by a text: words by length, plus half the bigram share."""
    return covers([fold(text)], words, grams)[0]


def covers(parts: Sequence[str], words: Sequence[str], grams: Set[str]) -> list[float]:
    """`coverage` of each of a text's folded parts (its sentences). The question's words and
    bigrams (`grams`, two characters each) are looked for in the whole text once, and in a
    part only when the text holds them: most are in none of a passage's sentences."""
    whole = "".join(parts)
    unique = set(words)
    total = sum(len(word) for word in unique) or 1
    present = [word for word in unique if word in whole]
    held = [gram for gram in grams if gram in whole]
    return [
        sum(len(word) for word in present if word in part) / total
        + 0.5 * sum(gram in part for gram in held) / (len(grams) or 1)
        for part in parts
    ]


def fit_bonus(sentence: str, want: Wanted | None) -> float:
    """How well a sentence holds what the question asks for."""
    if want is None:
        return 0.0
    if want.exact.search(sentence):
        return 0.8
    if want.near is not None and want.near.search(sentence):
        return 0.2
    return -0.3


def highlights(sentence: str) -> tuple[tuple[int, int], ...]:
    """Spans of the numbers (with measure words) in a sentence."""
    return tuple(match.span() for match in NUMBER.finditer(sentence) if match.group().strip())


def best_answer(query: Query, hits: Sequence[Hit]) -> Answer | None:
    """The best sentence among the top passages' sentences, or None when none covers anything."""
    want = query.wanted
    best: tuple[float, str, str] | None = None
    for hit in hits[:SENTENCE_POOL]:
        text, previous = hit.passage.text, 0.0
        for start, end in sentence_spans(text):
            sentence = text[start:end].strip()
            own = max(coverage(sentence, w.words, w.grams) for w in query.wordings)
            fit = fit_bonus(sentence, want)
            # The sentence before counts only for a sentence that holds the wanted number or
            # date: the subject is often named one sentence earlier ("项目总投资…,管道总长…").
            score = own + fit + (CONTEXT_WEIGHT * previous if fit > 0 else 0.0)
            score -= RANK_PENALTY * (hit.rank - 1)
            if own > 0 and (best is None or score > best[0]):
                best = (score, sentence, hit.passage.passage_id)
            previous = own
    if best is None:
        return None
    _, sentence, passage_id = best
    return Answer(sentence=sentence, highlights=highlights(sentence), passage_id=passage_id)


SNIPPET_CHARS = 240


def snippet_span(
    text: str, query: Query, *, max_chars: int = SNIPPET_CHARS, folded: str | None = None
) -> tuple[int, int]:
    """Span of the sentences of a passage to show: the best one, widened to about max_chars.

    `folded`: fold(text), when the search made it already.
    """
    spans = list(sentence_spans(text))
    if not spans or len(text) <= max_chars:
        return 0, len(text)
    if folded is None:  # once for the passage when offsets allow, else sentence by sentence
        folded = fold(text)
    same = len(folded) == len(text)
    parts = [folded[s:e] if same else fold(text[s:e]) for s, e in spans]
    covered = covers(parts, query.words, query.grams)
    want = query.wanted
    scores = [c + fit_bonus(text[s:e], want) for c, (s, e) in zip(covered, spans, strict=True)]
    first = last = max(range(len(spans)), key=scores.__getitem__)
    while True:
        before = first - 1 if first > 0 else None
        after = last + 1 if last + 1 < len(spans) else None
        grown = False
        for side in (after, before):  # prefer what follows the best sentence
            if (
                side is not None
                and spans[max(last, side)][1] - spans[min(first, side)][0] <= max_chars
            ):
                first, last, grown = min(first, side), max(last, side), True
                break
        if not grown:
            break
    start, end = spans[first][0], spans[last][1]
    return start, min(end, start + max_chars) if end - start > max_chars else end
