"""Pipeline step "ranked passages → answer": the one sentence that best answers the question.

Each sentence of the best passages is scored by how much of the question it covers (question
words, weighted by their length, and character bigrams), by the rank of its passage, and by
whether it holds what the question asks for: a number with its measure word for 多少/几, a
year for 哪一年, a date for 什么时候. Numbers in the chosen sentence are highlighted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from retrieval.models import Answer, Hit
from retrieval.passages import sentence_spans
from retrieval.tokenize import Tokenizer, fold

SENTENCE_POOL = 3  # sentences are taken from this many top passages

_CN_DIGITS = "零〇一二两三四五六七八九十百千万亿"
NUMBER = re.compile(
    rf"(?:[近约超逾达共第]|超过|将近)?"
    rf"(?:\d[\d,.]*|[{_CN_DIGITS}]{{2,}}|[{_CN_DIGITS}]分之[{_CN_DIGITS}]+)"
    rf"(?:\s*(?:余|多|万|亿|千|百))*"
    r"(?:\s*(?:%|‰|[个名家场座项件人次年月日号天米元台辆户所条只倍届期批位岁时分秒吨斤公里千米平方米亩]+))?"
)
_YEAR = re.compile(r"(?:1[89]|20)\d{2}\s*年")
_DATE = re.compile(r"\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|(?:1[89]|20)\d{2}\s*年")
_MEASURE = re.compile(r"\d\s*(?:余|多)?\s*[万亿千百]?\s*(?:余|多)?\s*[^\d\s\W]|[%‰]")

_WANTS = (
    (re.compile(r"哪一?年|何年|什么年份|年份"), _YEAR),
    (re.compile(r"什么时候|何时|哪天|几月|几号|日期"), _DATE),
    (re.compile(r"多少|几|多大|多长|多高|多久|比例|占比|百分之|数量"), _MEASURE),
)


def wanted_pattern(question: str) -> re.Pattern[str] | None:
    """What an answer to this question must contain, if the question says (number, year…)."""
    folded = fold(question)
    for asks, pattern in _WANTS:
        if asks.search(folded):
            return pattern
    return None


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def sentence_score(
    sentence: str, words: Sequence[str], grams: set[str], wants: re.Pattern[str] | None
) -> float:
    """How well one sentence answers: covered question words and bigrams, wanted pattern."""
    folded = fold(sentence)
    covered = sum(len(word) for word in set(words) if word in folded)
    total = sum(len(word) for word in set(words)) or 1
    gram_share = len(grams & _bigrams(folded)) / (len(grams) or 1)
    score = covered / total + 0.5 * gram_share
    if wants is not None:
        score += 0.6 if wants.search(sentence) else -0.3
    return score


def highlights(sentence: str) -> tuple[tuple[int, int], ...]:
    """Spans of the numbers (with measure words) in a sentence."""
    return tuple(match.span() for match in NUMBER.finditer(sentence) if match.group().strip())


def best_answer(question: str, hits: Sequence[Hit], tokenizer: Tokenizer) -> Answer | None:
    """The best sentence among the top passages' sentences, or None when none covers anything."""
    tokens = tokenizer.tokens(question)
    grams = set(tokens.bigrams)
    wants = wanted_pattern(question)
    best: tuple[float, str, str] | None = None
    for hit in hits[:SENTENCE_POOL]:
        text = hit.passage.text
        for start, end in sentence_spans(text):
            sentence = text[start:end].strip()
            score = sentence_score(sentence, tokens.words, grams, wants) - 0.15 * (hit.rank - 1)
            if best is None or score > best[0]:
                best = (score, sentence, hit.passage.passage_id)
    if best is None or best[0] <= 0:
        return None
    _, sentence, passage_id = best
    return Answer(sentence=sentence, highlights=highlights(sentence), passage_id=passage_id)
