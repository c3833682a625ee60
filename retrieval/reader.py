"""Pipeline step "ranked passages → answer", learned: the second stage over BM25.

BM25 finds the `CANDIDATES` best passages (`Candidate`: each field's score kept). Three small
models (two linear, one of boosted trees), trained by `python -m retrieval.train_reader` and
shipped as `retrieval/reader_weights.json`, then:

1. score every passage by its best evidence (`passage_rows`: BM25's scores, how much of the
   question its best sentence covers, idf-weighted) and reorder the candidates;
2. score every whole sentence (a ；does not end one) of the 2 best passages (`sentence_rows`:
   cover of the question by the sentence, by its neighbours, by the words and the characters
   the title does not say; whether it holds what the question asks for: for 广三铁路在哪年建成？
   a year, for 谁杀了司马晏？ a person);
3. pick the span of the best sentence that answers (`span_table`: 364.6公里 for 广茂铁路全长
   多少公里？; a number with its unit, a date, a name, a 《title》, what brackets or quotes hold, a
   short phrase or a longer one that ends a clause, for why/how questions a run of clauses;
   where it sits against the question's words and bigrams around its question word: 任天堂 in
   由任天堂改编 for 该游戏由谁改编？; whether it ends with what the question names after its
   question word and repeats the question's bigrams; which of jieba's tag classes sit at and
   around its edges, its length, whether it cuts a bracket), or none when the model is not
   confident.

Each model scores one question's rows, and a softmax over them gives each row's chance (the
passage and sentence models are conditional logits; the span model's trees are ranked per
question, `Trees`). `Reader.read` takes the pieces a search query holds (text, words, their idf,
the candidates), so it can take them from any query object. Scoring is numpy over the JSON
weights, the sentences' covers summed, the candidate spans laid out, the question at their
edges found, the span table's columns filled in and the trees walked in the package's C
extension; scipy and LightGBM only train.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from itertools import accumulate, chain, compress
from pathlib import Path

import numpy as np

from retrieval import kernels
from retrieval.answer import Wanted, fit_bonus, wanted
from retrieval.errors import RetrievalError
from retrieval.models import Answer, Passage
from retrieval.passages import sentence_spans
from retrieval.tokenize import Tokenizer, fold

WEIGHTS_FILE = "reader_weights.json"
WEIGHTS_VERSION = 2  # 2: the span model is trees
CANDIDATES = 5  # BM25 passages the reader reads (recall@5 of BM25 alone: 0.997; 10 read 0.998,
# CMRC dev's answers the same, and cost 0.7 ms a question at 100k passages)
MAX_SPAN_SEGMENTS = 5
MAX_SPAN_CHARS = 24
LONG_SPAN_SEGMENTS = 9  # longer spans only when they end a clause (意大利语、法语与英语)
LONG_SPAN_CHARS = 40

# --- Numbers and dates, normalised so that 1到4月, 1—4月, 1至4月 and 一至四月 match ----------
_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_CN_RUN = re.compile(r"[零〇一二两三四五六七八九十百千万亿]+")
_RANGE = re.compile(r"(\d)\s*(?:到|至|—+|–|-|~|～)\s*(?=\d)")
_MEASURE_AFTER = set("年月日号个位名家次届岁天人元倍种条项座所场")
_LONE_OK = _MEASURE_AFTER | set("至到")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")
_NUMERAL = re.compile(r"[\d零〇一二两三四五六七八九十百千万亿]")


def cn_number(text: str) -> int | None:
    """Value of a Chinese numeral (一九零三 → 1903, 三十五 → 35, 两万 → 20000), None if not one."""
    if all(c in _CN_DIGITS for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text)) if text else None
    total = section = digit = 0
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char in ("万", "亿"):
            total += (section + digit) * _CN_UNITS[char]
            section = digit = 0
        elif char in _CN_UNITS:
            section += (digit or 1) * _CN_UNITS[char]
            digit = 0
        else:
            return None
    return total + section + digit


def normalize_numbers(text: str) -> str:
    """Folded text with Chinese numerals as digits and every range dash as "-"."""
    return _normalized(fold(text))


def _arabic(match: re.Match[str]) -> str:
    run = match.group()
    if len(run) == 1 and run not in "十百千万亿":
        # A lone 一 is mostly a word part (统一, 一起); it counts only before a measure word.
        text, at = match.string, match.start()
        if text[at + 1 : at + 2] not in _LONE_OK and text[at - 1 : at] not in _LONE_OK:
            return run
    value = cn_number(run)
    return run if value is None else str(value)


def _normalized(folded: str) -> str:
    """Numbers normalised in text that is folded already."""
    return _RANGE.sub(_dash, _CN_RUN.sub(_arabic, folded))


def _dash(match: re.Match[str]) -> str:
    """A range's first number and "-" (`_RANGE`'s replacement)."""
    return match.group(1) + "-"


def numbers_in(text: str) -> set[str]:
    """The numbers of a text after normalisation (1903, 3.5, 4)."""
    return set(_DIGITS.findall(normalize_numbers(text)))


# --- What a question asks for -------------------------------------------------------------
_ASKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("year", re.compile(r"哪[一1]?年|何年|什么年份|年份|几几年")),
    ("date", re.compile(r"什么时候|何时|哪[一1]?天|几月|几号|日期|什么时间|哪个时间|哪个月")),
    ("share", re.compile(r"占.{0,6}多少|比例|占比|百分之|比重|份额|百分比")),
    ("duration", re.compile(r"多久|多长时间|几年|几天|几个月|多少年|多少天|多少个月|几小时")),
    ("money", re.compile(r"多少钱|多少元|价格|金额|售价|多少美元|花费")),
    ("count", re.compile(r"多少|几|多大|多长|多高|多远|多重|数量")),
    ("person", re.compile(r"谁|哪位|什么人|何人|哪个人|哪些人|名字")),
    ("place", re.compile(r"哪里|哪儿|何地|什么地方|何处|哪个国家|哪个城市|哪座|哪个省|哪国|在哪")),
    ("org", re.compile(r"哪个公司|哪家|什么公司|哪个组织|哪个机构|哪所|哪个大学|哪支|哪个队")),
    ("title", re.compile(r"哪部|哪本|哪首|什么书|什么歌|什么作品|什么电影|哪张|什么专辑")),
)
ASK_KINDS = tuple(kind for kind, _ in _ASKS)
_EXPLAINS = re.compile(r"为什么|为何|怎么|怎样|如何|哪些|原因|什么作用|什么意义|有何")
_WH = re.compile(
    r"多少|几|谁|什么|哪里|哪儿|哪|何|怎么|怎样|如何|为什么|为何|多久|多长|多大|多高|多远"
)

# Sentence or span holds a kind of thing (its own regex; names come from POS tags).
_HAS: dict[str, re.Pattern[str]] = {
    "year": re.compile(r"\d{3,4}\s*年"),
    "date": re.compile(r"\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?|\d{3,4}\s*年|\d{1,2}\s*日"),
    "share": re.compile(r"\d\s*[%‰]|分之|\d\s*成|一半|半数"),
    "duration": re.compile(r"\d[\d.]*\s*(?:多|余)?\s*(?:年|天|个月|月|小时|分钟|秒|周|星期|日)"),
    "money": re.compile(
        r"\d[\d.,]*\s*(?:多|余)?\s*(?:万|亿|千)?\s*(?:元|美元|英镑|欧元|日元|港元|块)"
    ),
    # A measure word of one or two characters (家, 场次, 公里), after 多/余 and 万/亿 (20万余人).
    "count": re.compile(r"\d[\d.,]*\s*[万亿千百]?\s*(?:多|余)?\s*[^\d\s\W]{1,2}"),
    "title": re.compile(r"《[^》]{1,30}》"),
}
_NAME_TAGS = {"person": ("nr",), "place": ("ns",), "org": ("nt",)}
_PUNCT = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A passage BM25 found, with each field's score divided by that field's best."""

    passage: Passage
    rank: int  # 1-based, in BM25's fused order
    words: float
    bigrams: float
    fused: float
    folded: str | None = None  # fold(passage.text), when the search made it already


@dataclass(frozen=True, slots=True)
class QuestionView:
    """What the reader needs of a question, made once (the pieces of a search `Query`)."""

    text: str
    folded: str
    words: tuple[str, ...]
    weights: tuple[float, ...]  # each word's share of the question's idf
    grams: frozenset[str]
    asks: str | None  # one of ASK_KINDS
    numbers: frozenset[str]
    left: str  # the question just before its question word (…司马晏 for 谁杀了司马晏？: "")
    right: str  # and just after it ("杀了司马晏")
    unit: str  # the measure word after 多少/几 (公里 in 全长多少公里)
    bare: str  # folded, numbers normalised, punctuation removed
    wanted: Wanted | None  # the hand-made pattern of retrieval.answer
    # The question's words on either side of its question word: 杀 and 司马晏 around 谁 in
    # 谁杀了司马晏？ has none before; the answer sits in the sentence where 谁 sits in it.
    hole_left: str = ""
    hole_right: str = ""
    explains: bool = False  # asks why or how (为什么, 怎样, 哪些): answered by clauses
    # All of the question's words before its question word, and all after it: where the
    # nearest hole word is not in a sentence (出任 for 在场上出任什么位置 against 场上司职中锋),
    # a farther one (场上) still marks the answer's side.
    before_wh: tuple[str, ...] = ()
    after_wh: tuple[str, ...] = ()

    @classmethod
    def make(cls, text: str, words: Sequence[str], idf: Sequence[float]) -> QuestionView:
        """Build from the question, its search words and each word's idf."""
        folded = normalize_numbers(text)
        unique = dict(zip(words, idf, strict=True))
        total = sum(max(w, 0.05) for w in unique.values()) or 1.0
        weights = tuple(max(w, 0.05) / total for w in unique.values())
        asks = next((kind for kind, pattern in _ASKS if pattern.search(folded)), None)
        bare = _PUNCT.sub("", folded)
        wh = _WH.search(bare)
        left, right, unit = bare, "", ""
        if wh is not None:
            left, right = bare[: wh.start()], bare[wh.end() :]
            if wh.group() in ("多少", "几"):
                unit = re.match(r"[个种]?[\u4e00-\u9fff]{0,2}", right).group()  # type: ignore[union-attr]
        grams = frozenset(bare[i : i + 2] for i in range(len(bare) - 1))
        return cls(
            text, folded, tuple(unique), weights, grams, asks, frozenset(numbers_in(text)),
            left[-6:], right[:6], unit, bare, wanted(text),
            *_hole_words(bare, tuple(unique), wh.start() if wh else len(bare),
                         wh.end() if wh else len(bare)),
            bool(_EXPLAINS.search(bare)),
            *_sides(bare, tuple(unique), wh.start() if wh else len(bare),
                    wh.end() if wh else len(bare)),
        )  # fmt: skip


def _hole_words(bare: str, words: Sequence[str], start: int, end: int) -> tuple[str, str]:
    """The question's words nearest before `start` and after `end` (its question word)."""
    left = right = ""
    left_at, right_at = -1, len(bare) + 1
    for word in words:
        at = bare.find(word)
        if at >= 0 and at + len(word) <= start and at > left_at:
            left, left_at = word, at
        if at >= end and at < right_at:
            right, right_at = word, at
    return left, right


def _sides(
    bare: str, words: Sequence[str], start: int, end: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The question's words wholly before `start` and wholly after `end` (its question word)."""
    found = [(bare.find(word), word) for word in words]
    before = tuple(word for at, word in found if at >= 0 and at + len(word) <= start)
    return before, tuple(word for at, word in found if at >= end)


# --- Features ----------------------------------------------------------------------------
PASSAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "bm25": ("words", "bigrams", "fused", "inv_rank", "first"),
    "evidence": ("best_cov", "best_grams", "best_both", "cov_passage", "grams_passage"),
    "title": ("cov_title",),
    "asks": ("passage_fit",),
}
SENTENCE_GROUPS: dict[str, tuple[str, ...]] = {
    "bm25": ("words", "bigrams", "fused", "inv_rank", "first"),
    "passage": ("passage_score", "passage_first"),
    "coverage": ("cov", "cov_window", "cov_prev", "grams", "grams_window", "by_length"),
    "beyond_title": ("rest", "rest_window", "rest_gap"),
    "relative": ("cov_gap", "grams_gap", "window_gap", "passage_gap", "hand_gap"),
    "title": ("cov_title",),
    "proximity": ("proximity",),
    "asks": (*(f"fit_{kind}" for kind in ASK_KINDS), "miss_kind", "wanted", "near"),
    "numbers": ("q_numbers", "q_numbers_missing"),
    "position": ("first_sentence", "position", "log_len"),
    "hole": ("hole_left_in", "hole_right_in", "hole_ordered", "hole_width"),
    "chars": ("rest_chars", "rest_chars_window", "rest_chars_gap", "fit_chars"),
    "discourse": ("anaphor_first",),
}
# A span's length in characters, binned: 1, 2, 3, 4, 5–6, 7–9, 10–14, 15 and more.
_LENGTH_BINS = (1, 2, 3, 4, 5, 7, 10, 15)
# jieba's tag classes told apart at a span's edges (nrt counts as nr, ul as u).
_TAG_CLASSES = (
    "n", "nr", "ns", "nt", "nz", "v", "vn", "m", "q", "p", "u", "c", "d", "a", "r", "f", "t",
    "x", "eng", "b",
)  # fmt: skip
SPAN_GROUPS: dict[str, tuple[str, ...]] = {
    "kind": (*(f"is_{kind}" for kind in (*ASK_KINDS, "noun", "verb")), "fit", "asks_none"),
    "unit": ("has_unit",),
    "context": ("left", "right", "both", "near", "log_distance", "left_any", "right_any"),
    "crossed": ("any_both", "fit_near", "fit_context", "noun_context"),
    "overlap": ("in_question", "question_word"),
    "shape": ("segments", "log_chars", "share", "punct_after", "punct_before", "start", "end"),
    "boundary": (
        "after_verb_prep",
        "before_de",
        "before_verb",
        "name_before",
        "name_after",
        "untagged",
    ),
    "run": (
        "open_length",
        "function_first",
        "function_last",
        "starts_run",
        "ends_run",
        "whole_run",
    ),
    "hole": (
        "gap_left",
        "gap_right",
        "after_left",
        "before_right",
        "in_hole",
        "fills_hole",
        "fit_hole",
        "side_gap_left",
        "side_gap_right",
        "side_after",
        "side_before",
        "side_between",
        "gram_gap_left",
        "gram_gap_right",
        "gram_between",
        "gram_after",
        "gram_before",
        "fit_gram",
        "none_gram",
    ),
    "clauses": ("joins", "explains_joins", "explains_length"),
    "head": ("head_tail", "head_more", "head_first", "gram_inside", "gram_share"),
    "brackets": ("unbalanced",),
    "length": tuple(f"chars_{low}" for low in _LENGTH_BINS[1:]),
    "tags": tuple(
        f"{where}_{tag}" for where in ("before", "first", "last", "after") for tag in _TAG_CLASSES
    ),
}
SENTENCE_POOL = 2  # passages, best by the passage model, whose sentences are read (3: no better)


def names(groups: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Feature names in column order."""
    return tuple(name for group in groups.values() for name in group)


def coverage(text: str, question: QuestionView) -> float:
    """Idf-weighted share of the question's words that occur in a (folded) text."""
    return sum(compress(question.weights, map(text.__contains__, question.words)))


def proximity(text: str, words: Iterable[str]) -> float:
    """How tightly the question's words (or those of them a passage holds) sit together in a
    text: their length over the span they cover."""
    found = [(at, len(word)) for word in words if (at := text.find(word)) >= 0]
    if len(found) < 2:
        return 0.0
    start = min(pos for pos, _ in found)
    end = max(pos + size for pos, size in found)
    return min(1.0, sum(size for _, size in found) / max(end - start, 1))


def wanted_fit(text: str, want: Wanted | None) -> float:
    """retrieval.answer's bonus for holding what the question asks for (0 if it asks nothing)."""
    return 0.0 if want is None else fit_bonus(text, want)


def holds(text: str, kind: str, tags: Sequence[tuple[str, str]], question: str) -> bool:
    """Whether a (normalised) text holds a thing of this kind that the question does not name."""
    if kind in _NAME_TAGS:
        wanted = _NAME_TAGS[kind]
        return any(tag.startswith(wanted) and word not in question for word, tag in tags)
    pattern = _HAS.get(kind)
    if pattern is None:
        return False
    return any(m.group() not in question for m in pattern.finditer(_normalized(text)))


@dataclass(frozen=True, slots=True)
class Sentences:
    """The sentences of one candidate passage: spans in its text, and folded text."""

    spans: tuple[tuple[int, int], ...]
    normal: tuple[str, ...]
    covs: tuple[float, ...]
    grams: tuple[float, ...]
    # The question's words (with their weights) and bigrams that the whole passage holds, in
    # the question's order: no other can be in a sentence or a run of them.
    held_words: tuple[tuple[str, float], ...] = ()
    held_grams: tuple[str, ...] = ()

    @classmethod
    def of(cls, text: str, question: QuestionView, folded: str | None = None) -> Sentences:
        """Split a passage and measure each sentence's cover of the question."""
        # Clauses joined by ；are one sentence: answers run across them (CMRC dev answer-hit
        # 2750 → 2761).
        spans = tuple(sentence_spans(text, clauses=False))  # never blank
        folded = fold(text) if folded is None else folded
        if len(folded) == len(text):  # fold the passage once when offsets allow
            normal = tuple(folded[s:e] for s, e in spans)
        else:
            normal = tuple(fold(text[s:e]) for s, e in spans)
        # Only what the whole passage holds can be in a sentence: most of the question's words
        # and bigrams are in few of the candidates, and are looked for once, not per sentence.
        whole = "".join(normal)
        words = tuple(
            (w, q) for w, q in zip(question.words, question.weights, strict=True) if w in whole
        )
        grams = tuple(g for g in question.grams if g in whole)
        count = len(question.grams) or 1
        return cls(
            spans,
            normal,
            tuple(kernels.held_sums([w for w, _ in words], [q for _, q in words], normal)),
            tuple(held / count for held in kernels.held_sums(grams, None, normal)),
            words,
            grams,
        )


# Titles repeat: a question's candidates are often passages of one article, and questions
# come back to the same articles. Folded once each (a few hundred characters at most).
_title_numbers = lru_cache(maxsize=4096)(normalize_numbers)
_folded_title = lru_cache(maxsize=4096)(fold)


def passage_rows(
    question: QuestionView, candidates: Sequence[Candidate], sentences: Sequence[Sentences]
) -> np.ndarray:
    """Feature rows (candidates × PASSAGE_GROUPS) of the candidate passages."""
    rows = []
    for cand, split in zip(candidates, sentences, strict=True):
        whole = "".join(split.normal)
        title = _title_numbers(cand.passage.source.title or "")
        fit = question.asks is not None and holds(whole, question.asks, (), question.folded)
        rows.append(
            (
                cand.words,
                cand.bigrams,
                cand.fused,
                1 / cand.rank,
                float(cand.rank == 1),
                max(split.covs, default=0.0),
                max(split.grams, default=0.0),
                max((c + g for c, g in zip(split.covs, split.grams, strict=True)), default=0.0),
                sum(q for _, q in split.held_words),  # coverage(whole, question)
                len(split.held_grams) / len(question.grams) if question.grams else 0.0,
                coverage(title, question),
                float(fit),
            )
        )
    return np.array(rows, dtype=np.float64).reshape(-1, len(names(PASSAGE_GROUPS)))


@dataclass(frozen=True, slots=True)
class SentenceRow:
    """One sentence of a candidate: where it is, and its feature row."""

    candidate: int
    start: int
    end: int
    features: tuple[float, ...]


def sentence_rows(
    question: QuestionView,
    candidates: Sequence[Candidate],
    sentences: Sequence[Sentences],
    pool: Sequence[int],
    passage_scores: np.ndarray,
    tokenizer: Tokenizer,
    *,
    gaps: bool = True,
) -> list[SentenceRow]:
    """Feature rows of every sentence of the candidates in `pool` (indices, best first).

    With `gaps=False` the gap features are left unset, for `gap_table` to fill in.
    """
    rows = []
    asks, numbers = question.asks, question.numbers
    fits = _FITS.get(asks, _FITS[None])  # the one-hot of what is asked, when a sentence holds it
    for place, i in enumerate(pool):
        cand, split = candidates[i], sentences[i]
        normal, covs = split.normal, split.covs
        title_text = _folded_title(cand.passage.source.title or "")
        title = coverage(title_text, question)
        # Wikipedia and news alike name their subject in the title and first sentence, then
        # say 本鱼 or 该公司: the words beyond the title are what find the answering sentence.
        rest = [(w, q) for w, q in zip(question.words, question.weights, strict=True)
                if w not in title_text]  # fmt: skip
        rest_total = sum(q for _, q in rest) or 1.0
        # Only what the whole passage holds can be in a sentence or its window (`Sentences`).
        held, held_grams = split.held_words, split.held_grams
        rest_held = [(w, q) for w, q in held if w not in title_text]
        length_total = sum(len(w) for w in question.words) or 1
        grams_count = len(question.grams)
        char_covs = rest_char_covers(question.bare, title_text, normal)
        windows = ["".join(normal[max(j - 1, 0) : j + 2]) for j in range(len(normal))]
        held_words, held_weights = [w for w, _ in held], [q for _, q in held]
        rest_words, rest_weights = [w for w, _ in rest_held], [q for _, q in rest_held]
        # What each sentence and each window holds (sums in the question's order, as a
        # generator over the words would add them).
        lengths = kernels.held_sums(held_words, [len(w) for w in held_words], normal)
        rest_covs = kernels.held_sums(rest_words, rest_weights, normal)
        rest_windows = kernels.held_sums(rest_words, rest_weights, windows)
        window_covs = kernels.held_sums(held_words, held_weights, windows)
        window_grams = kernels.held_sums(held_grams, None, windows)
        passage_part = (
            cand.words, cand.bigrams, cand.fused, 1 / cand.rank, float(cand.rank == 1),
            float(passage_scores[i]), float(place == 0),
        )  # fmt: skip
        for j, ((start, end), sentence) in enumerate(zip(split.spans, normal, strict=True)):
            fit = False
            if asks is not None:
                tags = tokenizer.tag(sentence) if asks in _NAME_TAGS else []
                fit = holds(sentence, asks, tags, question.folded)
            q_found = 0
            if numbers:
                found = set(_DIGITS.findall(_normalized(sentence)))
                q_found = sum(n in found for n in numbers)
            by_length = lengths[j] / length_total  # its words, each by its length
            rest_cov = rest_covs[j] / rest_total
            rest_window = rest_windows[j] / rest_total
            fit_bonus = wanted_fit(sentence, question.wanted)
            features = (
                *passage_part,
                covs[j],
                window_covs[j],  # coverage(window, question)
                covs[j - 1] if j else 0.0,
                split.grams[j],
                window_grams[j] / grams_count if grams_count else 0.0,
                by_length,
                rest_cov,
                rest_window,
                rest_cov,  # its gap, filled in below
                # the gaps to the question's best, filled in below
                0.0,
                0.0,
                0.0,
                0.0,
                by_length + 0.5 * split.grams[j] + fit_bonus,
                title,
                proximity(sentence, held_words),
                *(fits if fit else _FITS[None]),
                float(asks is not None and not fit),
                float(fit_bonus > 0.5),
                float(0 < fit_bonus < 0.5),
                q_found / len(numbers) if numbers else 0.0,
                float(len(numbers) > q_found),
                float(j == 0),
                j / len(split.spans),
                math.log1p(len(sentence)),
                *_hole_in(sentence, question),
                char_covs[j],
                max(char_covs[max(j - 1, 0) : j + 2]),
                char_covs[j],  # its gap, filled in below
                float(fit) * char_covs[j],
                float(bool(_ANAPHOR.match(sentence))),
            )
            rows.append(SentenceRow(i, start, end, features))
    return _with_gaps(rows) if gaps else rows


_FITS = {kind: tuple(float(kind == other) for other in ASK_KINDS) for kind in (None, *ASK_KINDS)}

# A sentence that opens on 他, 该 or 本 goes on about the subject without naming it again.
_ANAPHOR = re.compile(r"[他她它牠其该本此这]")


# Characters too common to tell sentences apart, and the question words' own.
_COMMON_CHARS = frozenset(
    "的是了在有和与被为什么哪谁多少几吗呢怎样何其该这那个一之于也都而及或吧呀啊"
)


def rest_char_covers(bare: str, title: str, sentences: Sequence[str]) -> list[float]:
    """Each sentence's share of the question's characters that the title does not hold, each
    character weighted by how few of the passage's sentences hold it (log((n + 1) / (df + ½))).

    Words match whole or not at all: 体长 misses 灰凤冠雉长91厘米, 著作 misses 著有《高阳集》;
    their characters still find the answering sentence.
    """
    chars = dict.fromkeys(c for c in bare if c not in title and c not in _COMMON_CHARS)
    held = [[c in text for text in sentences] for c in chars]
    n = len(sentences)
    weights = [math.log((n + 1) / (sum(row) + 0.5)) for row in held]
    total = sum(weights) or 1.0
    return [
        sum(w for w, row in zip(weights, held, strict=True) if row[j]) / total for j in range(n)
    ]


def _hole_in(sentence: str, question: QuestionView) -> tuple[float, float, float, float]:
    """Whether a sentence holds the words around the question word, in the question's order,
    with room between them for the answer (the room's length, log)."""
    left = sentence.find(question.hole_left) if question.hole_left else -1
    right = sentence.find(question.hole_right, max(left, 0)) if question.hole_right else -1
    ordered = left >= 0 and right >= left + len(question.hole_left)
    width = right - left - len(question.hole_left) if ordered else 0
    return float(left >= 0), float(right >= 0), float(ordered), math.log1p(min(width, 30))


_GAPS = tuple(
    (names(SENTENCE_GROUPS).index(source), names(SENTENCE_GROUPS).index(gap))
    for source, gap in (
        ("cov", "cov_gap"), ("grams", "grams_gap"), ("cov_window", "window_gap"),
        ("passage_score", "passage_gap"), ("hand_gap", "hand_gap"), ("rest", "rest_gap"),
        ("rest_chars", "rest_chars_gap"),
    )
)  # fmt: skip


def _with_gaps(rows: list[SentenceRow]) -> list[SentenceRow]:
    """Rows with each gap feature set to the value minus the best value among the rows.

    A logistic regression scores each sentence alone; the gaps tell it how the sentence
    compares with the others of the same question, which is what picking one needs.
    """
    if not rows:
        return rows
    return [
        SentenceRow(r.candidate, r.start, r.end, tuple(v))
        for r, v in zip(rows, gap_table(rows).tolist(), strict=True)
    ]


def gap_table(rows: Sequence[SentenceRow]) -> np.ndarray:
    """The rows as one array (rows × SENTENCE_GROUPS), gap features filled in (`_with_gaps`)."""
    table = np.array([r.features for r in rows], dtype=np.float64)
    for source, gap in _GAPS:
        table[:, gap] = table[:, source] - table[:, source].max()
    return table


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One candidate span of a sentence (offsets into the sentence) and its feature row."""

    start: int
    end: int
    features: tuple[float, ...]


def _common_suffix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _in_question_suffix(before: str, question: str) -> int:
    """How many characters just before a span occur together in the question (at most 8)."""
    n = 0
    while n < min(8, len(before)) and before[len(before) - n - 1 :] in question:
        n += 1
    return n


def _in_question_prefix(after: str, question: str) -> int:
    """How many characters just after a span occur together in the question (at most 8)."""
    n = 0
    while n < min(8, len(after)) and after[: n + 1] in question:
        n += 1
    return n


_BARE_NUMBER = re.compile(r"[\d.,]+")
_KIND_ORDER = (*ASK_KINDS, "noun", "verb")


def _joined_names(tagged: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Segments with transliterated names joined: 布兰科 · 茨尔文科夫斯基 is one name."""
    joined: list[tuple[str, str]] = []
    for word, tag in tagged:
        if len(joined) >= 2 and joined[-1][0] == "·" and joined[-2][1].startswith("nr"):
            joined[-2:] = [(joined[-2][0] + "·" + word, joined[-2][1])]
        else:
            joined.append((word, tag))
    return joined


def span_candidates(
    normal: str, tagged: Sequence[tuple[str, str]], *, clause_runs: bool = False
) -> np.ndarray:
    """Spans of a (folded) sentence that could be an answer: runs of segments, clauses, typed
    matches. `tagged` is the sentence's segments with their POS tags (`_segments`).

    Rows (start, end, first segment, last segment), in the order found; the segments are
    (−1, −1) for a span that a pattern matched rather than a run of segments. The runs are
    laid out in C (`kernels.span_runs`), which also leaves out a matched span found before.
    """
    words = [word for word, _ in tagged]
    stops = [bool(_HARD_STOP.search(word)) for word in words]
    for k in range(1, len(words) - 1):
        # 33,700: a comma between digits is part of the number, not a clause break.
        if words[k] == "," and words[k - 1][-1].isdigit() and words[k + 1][0].isdigit():
            stops[k] = False
    # A span may open with 《 or “ and close with 》, ” or %, but not with other punctuation.
    joined = "".join(words)
    lengths = list(map(len, words))
    bounds = [0, *accumulate(lengths)]
    punct = _flags(joined, _PUNCT).tolist()
    bad_first = [punct[at] and joined[at] not in '《“"' for at in bounds[:-1]]
    bad_last = [punct[at - 1] and joined[at - 1] not in '》”"%)）' for at in bounds[1:]]
    matched: list[int] = []
    clauses = [m.span() for m in _CLAUSE.finditer(normal)] if clause_runs else []
    for i, (start, end) in enumerate(clauses):
        # Why and how are answered by clauses: runs of two or three, joined by ， or ；.
        for later, later_end in clauses[i + 1 : i + 3]:
            if later != end + 1 or normal[end] not in _JOINS:
                break
            matched += (start, later_end)
            end = later_end
    for pattern in _SPAN_PATTERNS:
        for m in pattern.finditer(normal):
            if m.end() > m.start():
                matched += m.span()
    out = np.empty((len(words) * (MAX_SPAN_SEGMENTS + 1) + len(matched) // 2, 4), np.int64)
    rows = kernels.span_runs(
        np.array(lengths, np.int64), np.array(stops, bool), np.array(bad_first, bool),
        np.array(bad_last, bool), np.array(matched, np.int64), len(normal), MAX_SPAN_SEGMENTS,
        MAX_SPAN_CHARS, LONG_SPAN_SEGMENTS, LONG_SPAN_CHARS, out,
    )  # fmt: skip
    return out[:rows]


def _flags(text: str, pattern: re.Pattern[str]) -> np.ndarray:
    """Whether each character of a text is in a match of a pattern (one regex pass)."""
    flags = np.zeros(len(text), dtype=bool)
    for m in pattern.finditer(text):
        flags[m.start() : m.end()] = True
    return flags


def _running(flags: np.ndarray) -> np.ndarray:
    """Counts of true flags before each position (0 … len): any range's count by subtraction."""
    counts = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=counts[1:])
    return counts


def _segments(normal: str, tokenizer: Tokenizer) -> list[tuple[str, str]]:
    """A folded sentence's segments and their POS tags, transliterated names joined."""
    return _joined_names(tokenizer.tag(normal))


_HARD_STOP = re.compile(r"[，,。；;！!？?：:\s]")
_CLAUSE = re.compile(r"[^，,。；;！!？?：:]+")
_JOINS = ("，", ",", "；", ";")
_QUOTED = re.compile(r"“[^”]{1,20}”")
# What a bracket or quote holds, as a whole: 「摩天高雄」, (uzbek), 『华美的象牙』.
_BRACKETED = re.compile(r"(?<=[「『“\"(（])[^」』”\"()（）]{1,30}(?=[」』”\")）])")
_SPAN_PATTERNS = (_CLAUSE, *_HAS.values(), _QUOTED, _BRACKETED)
_NAME_PARTS = ("nr", "ns", "nt", "nz")


_UNIT_TAIL = re.compile(r"\d[^\d]*$")


def _unit_tail(piece: str) -> str:
    """What follows a span's last number (公里 in 364.6公里), "" when it holds no number."""
    match = _UNIT_TAIL.search(piece)
    # 多, 余 and the magnitudes (40多家, 127余场次, 20万余人) are not the unit.
    return match.group()[1:].lstrip(" 多余万亿千百") if match else ""


@dataclass(frozen=True, slots=True)
class SpanTable:
    """The candidate spans of a sentence (offsets into it) and their feature rows."""

    starts: np.ndarray
    ends: np.ndarray
    features: np.ndarray  # spans × SPAN_GROUPS

    def rows(self) -> list[SpanRow]:
        """One `SpanRow` a span (for training, which keeps them)."""
        return [
            SpanRow(s, e, tuple(row))
            for s, e, row in zip(
                self.starts.tolist(), self.ends.tolist(), self.features.tolist(), strict=True
            )
        ]


_NO_SPANS = SpanTable(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0)))


def span_rows(question: QuestionView, sentence: str, tokenizer: Tokenizer) -> list[SpanRow]:
    """Feature rows of the candidate spans of a sentence (`span_table`, row by row)."""
    return span_table(question, sentence, tokenizer).rows()


def span_table(question: QuestionView, sentence: str, tokenizer: Tokenizer) -> SpanTable:
    """Feature rows of the candidate spans of a sentence.

    Only what needs a span's own text (its kind of number, its unit, the question at its
    edges) is worked out in Python (`_span_text_parts`); the rest comes from per-character and
    per-segment arrays of the sentence and the places of the question's words in it, from
    which the C loop `kernels.span_columns` fills in every span's columns in one pass (what
    each column holds: `_span_layout`, `_places` and `_tails`).
    """
    spans = candidate_spans(question, sentence, tokenizer)
    if spans is None:
        return _NO_SPANS
    chars, tagged, starts, ends = spans.chars, spans.tagged, spans.starts, spans.ends
    normal = chars.normal
    table = np.zeros((len(starts), len(_SPAN_COLUMNS)))
    kernels.span_columns(
        table, np.concatenate((starts, ends, spans.first, spans.last)), spans.in_question,
        _span_text_parts(question, chars, starts, ends), _segment_flags(tagged), chars.punct,
        chars.settled, chars.codes, *_places(question, normal), _tails(question, normal, ends),
        _log1p_table(len(normal)), _layout(question, normal),
    )  # fmt: skip
    return SpanTable(starts, ends, table)


@dataclass(frozen=True, slots=True)
class CandidateSpans:
    """A sentence's candidate spans (`span_candidates`, those not wholly the question's) and
    what their columns are worked out from."""

    chars: _Chars
    tagged: list[tuple[str, str]]  # the sentence's segments and their tags (`_segments`)
    starts: np.ndarray
    ends: np.ndarray
    first: np.ndarray  # each span's first and last segment, −1 for a span a pattern matched
    last: np.ndarray
    in_question: np.ndarray  # the share of each span's characters that are the question's


def candidate_spans(
    question: QuestionView, sentence: str, tokenizer: Tokenizer
) -> CandidateSpans | None:
    """The spans of a sentence that may answer the question, None if there are none."""
    normal = fold(sentence)
    tagged = _segments(normal, tokenizer)
    found = span_candidates(normal, tagged, clause_runs=question.explains)
    if not len(found):
        return None
    asked = set(question.bare)
    in_asked = np.array([c in asked for c in normal], dtype=bool)
    asked_before = _running(in_asked)
    starts, ends = found[:, 0], found[:, 1]
    in_question = (asked_before[ends] - asked_before[starts]) / np.maximum(ends - starts, 1)
    keep = in_question < 1.0  # the question's own words never answer it
    if not keep.any():
        return None
    # Padded by a true each side: index i is character i − 1, a span's sides are starts, ends+1.
    punct = np.ones(len(normal) + 2, dtype=bool)
    punct[1:-1] = _flags(normal, _PUNCT)
    # A character "settled" by the question (in it, or punctuation) bounds the unknown part.
    settled = punct.copy()
    settled[1:-1] |= in_asked
    codes = np.frombuffer(normal.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return CandidateSpans(
        _Chars(normal, punct, settled, codes), tagged, starts[keep], ends[keep],
        found[keep, 2], found[keep, 3], in_question[keep],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Chars:
    """A folded sentence and its per-character arrays, made once for all its spans."""

    normal: str
    punct: np.ndarray  # bool, padded by a true each side: punctuation (`_PUNCT`)
    settled: np.ndarray  # bool, padded the same: in the question, or punctuation
    codes: np.ndarray  # uint32: each character's code point


_SPAN_COLUMNS = names(SPAN_GROUPS)
_COLUMN = {name: k for k, name in enumerate(_SPAN_COLUMNS)}


# Where `_span_text_parts`' columns go (the edges' lengths are scaled by 1/6 on the way).
_TEXT_COLUMNS = (
    *(f"is_{kind}" for kind in ASK_KINDS[:6]), "is_title", "has_unit", "left", "left_any",
    "right", "right_any", "question_word",
)  # fmt: skip
_MEASURES = "一个种位座家部本条所支"


def _ends_with_start(text: str, word: str) -> int:
    """How long a start of `word` `text` ends with (大曼彻斯特郡 and 郡相邻: 1)."""
    return next((k for k in range(len(word), 0, -1) if text.endswith(word[:k])), 0)


def _grams(text: str) -> tuple[str, ...]:
    """The distinct character bigrams of a text, in order."""
    return tuple(dict.fromkeys(text[i : i + 2] for i in range(len(text) - 1)))


# Brackets and quotes a span opens without closing them, or closes without opening them
# (著《图雅的婚事, 族称为「远吠之神): a cut answer ("unbalanced").
_PAIRS = ("《》", "「」", "『』", "“”", "()", "[]", "【】", '""')
_FAR = 30  # characters: a question word further from the span tells nothing of it


def _starts(text: str, words: Iterable[str]) -> list[int]:
    """Where each of `words` (none empty) starts in `text`, every occurrence."""
    found = []
    for word in filter(None, words):
        at = text.find(word)
        while at >= 0:
            found.append(at)
            at = text.find(word, at + 1)
    return found


# A segment's flags: bits of one int, with its tag class + 1 above them (0: none).
_NR, _NS, _NT, _NOUN, _VERB, _FUNCTION, _LINK, _VERB_PREP, _DE, _NAME_PART = range(10)
_CLASS_SHIFT = 10
_WORD_FLAGS = {"是": 1 << _VERB_PREP, "为": 1 << _VERB_PREP, "的": 1 << _DE, "·": 1 << _NAME_PART}


@cache
def _tag_flags(tag: str) -> int:
    """A jieba tag's segment flags and tag class as one int (jieba's tags are few: made once)."""
    flags = (
        tag.startswith("nr"),
        tag.startswith("ns"),
        tag.startswith("nt"),
        tag.startswith("n"),
        tag.startswith("v"),
        tag[:1] in ("p", "d", "c", "v", "u"),
        tag[:1] in ("p", "u", "c"),
        tag.startswith(("p", "v")),
        tag == "uj",
        # A span that stops inside a name (保罗|·|塞里诺) is rarely the answer.
        tag.startswith(_NAME_PARTS),
    )
    class_bits = (_tag_class(tag) + 1) << _CLASS_SHIFT
    return sum(flag << bit for bit, flag in enumerate(flags)) | class_bits


def _segment_flags(tagged: Sequence[tuple[str, str]]) -> np.ndarray:
    """Each segment's flags (its tag's, and 是, 为, 的 and · by their word), then a 0 for
    "no segment" (before the first or after the last)."""
    return np.array(
        [*(_tag_flags(tag) | _WORD_FLAGS.get(word, 0) for word, tag in tagged), 0], dtype=np.int64
    )


# Where each segment column reads: the segment before the span (0), its first (1), its last
# (2) or the one after it (3), and which flag.
_SEGMENT_FLAG_COLUMNS = {
    "is_noun": (2, _NOUN), "is_verb": (1, _VERB),
    "after_verb_prep": (0, _VERB_PREP), "before_de": (3, _DE), "before_verb": (3, _VERB),
    "name_before": (0, _NAME_PART), "name_after": (3, _NAME_PART),
    "function_first": (1, _FUNCTION), "function_last": (2, _LINK),
}  # fmt: skip


def _span_layout() -> np.ndarray:
    """What `kernels.span_columns` writes where, in the order of its C `enum` (L_*): the
    columns it fills, then the constants it works them out with. A question's own values (the
    last four) are set by `_layout`.

    Per span: `fit` (× `asks_none`, whether the span is of the kind asked for), the question's
    words at its `left` and `right` edges (/6, and whether `both`), `near` (≤ 1 character from
    the nearest question word the sentence holds, and `log_distance` to it), the crossings of
    these, the share of its characters in the question (`in_question`), its length
    (`log_chars`, `share` of the sentence, one-hot `chars_*` bins), punctuation at its sides,
    whether it `start`s or `end`s the sentence, whether its sides are "settled" (punctuation or
    the question's characters: `starts_run`, `ends_run`, `whole_run`), the clause joins
    (，；) inside it (`joins`, log), the `hole` group (characters from its start back to the
    question's word before its question word, its side words and its bigrams, and from its end
    on to those after it: `gap_*` log, `*_after`/`*_before` ≤ 1, `*_between` both, `in_hole`
    both under `_FAR`; × fit, × no kind asked), the `head` group (`_tails`; the question's
    bigrams inside the span), `unbalanced`, and what its segments say (`_SEGMENT_FLAG_COLUMNS`,
    whether all are names of a kind, their count, `untagged` for a span a pattern matched, the
    tag classes before, first, last and after, one-hot)."""
    col = _COLUMN
    columns = (
        "fit", "asks_none", "left", "right", "both", "near", "log_distance", "any_both",
        "fit_near", "fit_context", "noun_context", "in_question", "log_chars", "share",
        "punct_after", "punct_before", "start", "end", "open_length", "starts_run", "ends_run",
        "whole_run", "joins", "explains_joins", "explains_length", "unbalanced",
        # the hole rows: the hole word, the side words and the bigrams, before then after
        "gap_left", "side_gap_left", "gram_gap_left", "gap_right", "side_gap_right",
        "gram_gap_right",
        "after_left", "side_after", "gram_after", "before_right", "side_before", "gram_before",
        "fills_hole", "side_between", "gram_between",
        "in_hole", "fit_hole", "fit_gram", "none_gram",
        "head_tail", "head_more", "head_first", "gram_inside", "gram_share",
        *SPAN_GROUPS["length"], "segments", "untagged", "is_person", "is_place", "is_org",
        *_SEGMENT_FLAG_COLUMNS,
    )  # fmt: skip
    return np.array([
        *(col[name] for name in columns),
        *(where for where, _ in _SEGMENT_FLAG_COLUMNS.values()),
        *(bit for _, bit in _SEGMENT_FLAG_COLUMNS.values()),
        _NR, _NS, _NT,
        col[SPAN_GROUPS["tags"][0]], len(_TAG_CLASSES), _CLASS_SHIFT, col["is_noun"],
        *(col[name] for name in _TEXT_COLUMNS),
        *_LENGTH_BINS,
        *map(ord, _JOINS),
        *(ord(c) for pair in _PAIRS for c in pair),
        _FAR,
        0, -1, 0, 0,  # the question's: `_layout`
    ], dtype=np.int64)  # fmt: skip


def _layout(question: QuestionView, normal: str) -> np.ndarray:
    """`_SPAN_LAYOUT` with a question's and a sentence's own values: where the sentence's end
    is (its closing punctuation left out), the column of the kind asked for (−1: none), whether
    no kind is asked, whether it asks why or how."""
    layout = _SPAN_LAYOUT.copy()
    asked = _COLUMN[f"is_{question.asks}"] if question.asks else -1
    layout[-4:] = (
        len(normal.rstrip("。！？!?；;…")),
        asked,
        question.asks is None,
        question.explains,
    )
    return layout


def _places(question: QuestionView, normal: str) -> tuple[np.ndarray, np.ndarray]:
    """Where the question's words sit in a sentence, as (places, bounds): set i is
    places[bounds[i]:bounds[i + 1]]. Sets 0–2: where the question's word before its question
    word, its words before it and the bigrams of the six characters before it end; 3–5: where
    those after it start (the hole); 6: where the question's bigrams start; 7 and 8: the first
    place and the length of each question word the sentence holds."""
    before = ((question.hole_left,), question.before_wh, _grams(question.left))
    after = ((question.hole_right,), question.after_wh, _grams(question.right))
    spots = [(normal.find(w), len(w)) for w in question.words if w in normal]
    sets = [
        *([a + len(w) for w in words for a in _starts(normal, (w,))] for words in before),
        *(_starts(normal, words) for words in after),
        _starts(normal, question.grams),
        [at for at, _ in spots],
        [size for _, size in spots],
    ]
    sizes = [len(s) for s in sets]
    bounds = np.zeros(len(sets) + 1, dtype=np.int64)
    bounds[1:] = list(accumulate(sizes))
    return np.fromiter(chain.from_iterable(sets), np.int64, int(bounds[-1])), bounds


def _tails(question: QuestionView, normal: str, ends: np.ndarray) -> np.ndarray:
    """The "head" group's per-end values, (len + 1) × 2 flattened: how much of what follows the
    question word a span ending there ends with (多元化金融企业 for 是什么类型的企业), and how
    much of the start of what is named after it (大曼彻斯特郡 for 柴郡的东北方是哪个郡)."""
    # Only spans ending on one of the question's characters can end with a piece of it.
    ending = [e for e in set(ends.tolist()) if normal[e - 1] in question.right]
    # What is asked for is named right after the question word, past a measure word: 郡 in
    # 哪个郡, 国 in 哪一国的小说家 (the question's end, 小说家, is not it).
    noun = question.right.lstrip(_MEASURES)[:3]
    tails = np.zeros((len(normal) + 1, 2), dtype=np.int64)
    if ending:
        tails[ending] = [
            (_common_suffix(normal[max(e - 4, 0) : e], question.right),
             _ends_with_start(normal[max(e - 3, 0) : e], noun))
            for e in ending
        ]  # fmt: skip
    return tails.reshape(-1)


_LOG1P = np.log1p(np.arange(1024, dtype=np.float64))


def _log1p_table(n: int) -> np.ndarray:
    """log1p of 0 … at least max(n, `_FAR`), numpy's bits (the columns that are logs of
    counts and lengths look them up)."""
    return _LOG1P if n < len(_LOG1P) else np.log1p(np.arange(n + 1, dtype=np.float64))


def _tag_class(tag: str) -> int:
    """The column of a jieba tag in `_TAG_CLASSES` (nrt → nr, ul → u), −1 for the rest."""
    for known in (tag, tag[:2], tag[:1]):
        if known in _TAG_CLASSES:
            return _TAG_CLASSES.index(known)
    return -1


_SPAN_LAYOUT = _span_layout()

_NUMBER_KINDS = 6  # year, date, share, duration, money, count: the first ASK_KINDS
_TITLE = _NUMBER_KINDS
_UNIT = _TITLE + 1
_LEFT = _UNIT + 1
_NO_NUMBER = (False,) * _NUMBER_KINDS
_OPENING_TITLE = ord("《")


def _span_text_parts(
    question: QuestionView, chars: _Chars, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Spans × (number kinds, title, unit, the question at their edges, a question word in).

    Most spans hold no number and no 《: for them all of it comes from offsets; only the others
    are read one by one (`_span_text_columns`).
    """
    table, skips = _span_text_columns(question, chars, starts, ends)
    # Spans share edges: each edge is worked out once, then looked up. The question goes on
    # past an edge only when the character beside it is one of the question's.
    bare = _PUNCT.sub("", chars.normal)
    kept = _running(~chars.punct[1:-1])  # characters before i that are not punctuation
    # by offset: left edges, right edges (`_left_edge`, `_right_edge` in C)
    sides = kernels.edge_sides(bare, kept, question.left, question.right, question.bare)
    table[:, _LEFT : _LEFT + 2] = sides[0, starts]
    table[:, _LEFT + 2 : _LEFT + 4] = sides[1, ends]
    for k in np.flatnonzero(skips).tolist():
        after = bare[int(kept[int(ends[k])]) :]
        table[k, _LEFT + 2 : _LEFT + 4] = _right_edge(question, after, skips[k])
    return table


def _span_text_columns(
    question: QuestionView, chars: _Chars, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`_span_text_parts`' table with what a span's own text says filled in (number kinds,
    title, unit, a question word in; the edges' columns left 0), and for each span how many
    characters of the question's measure word its own unit takes (0: none), which the
    question at its right edge is read past (`_right_edge`)."""
    normal = chars.normal
    table = np.zeros((len(starts), _LEFT + 5))
    numeral = _running(_flags(normal, _NUMERAL))
    has_number = numeral[ends] > numeral[starts]
    table[:, _LEFT + 4] = _holds_word(question.words, normal, starts, ends)
    skips = np.zeros(len(starts), dtype=np.int64)
    picked = np.flatnonzero(has_number | (chars.codes[starts] == _OPENING_TITLE)).tolist()
    if picked:
        starts_at, ends_at, numbered = starts.tolist(), ends.tolist(), has_number.tolist()
        parts = [
            _span_text_part(question, normal[starts_at[k] : ends_at[k]], numbered[k])
            for k in picked
        ]
        table[picked, :_LEFT] = [row[:_LEFT] for row, _ in parts]
        table[picked, _LEFT + 4] = [row[_LEFT] for row, _ in parts]
        skips[picked] = [skip for _, skip in parts]
    return table, skips


def _holds_word(
    words: Sequence[str], text: str, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """Whether each span of a text holds one of the words whole."""
    spots = []
    for word in words:
        at = text.find(word)
        while at >= 0:
            spots.append((at, at + len(word)))
            at = text.find(word, at + 1)
    if not spots:
        return np.zeros(len(starts), dtype=bool)
    at, to = np.array(spots).T
    return ((starts[:, None] <= at) & (to <= ends[:, None])).any(axis=1)


def _left_edge(question: QuestionView, before: str) -> tuple[int, float]:
    """The question's words just before a span: next to its question word, and any."""
    return (
        min(_common_suffix(before, question.left), 6),
        _in_question_suffix(before, question.bare) / 8,
    )


def _right_edge(question: QuestionView, after: str, skip: int) -> tuple[int, float]:
    """The same after a span, past `skip` characters of the question's measure word."""
    # After 多少公里 the question goes on past the unit, as the sentence after 364.6公里.
    return (
        min(_common_prefix(after, question.right[skip:]), 6),
        _in_question_prefix(after, question.bare) / 8,
    )


def _span_text_part(
    question: QuestionView, piece: str, number: bool
) -> tuple[tuple[bool, ...], int]:
    """One span's number kinds, title, unit and whether it holds a question word, read in its
    numbers normalised (`_span_text_parts`), and its unit's length.

    `number`: whether the piece holds a numeral.
    """
    tail = ""
    kinds: Sequence[bool] = _NO_NUMBER
    if number:
        piece = _normalized(piece)
        if piece[:1].isdecimal():
            kinds = [pattern.fullmatch(piece) is not None for pattern in _NUMBER_PATTERNS]
        else:  # every kind's pattern opens on a digit (\d), but for 分之, 一半 and 半数
            kinds = [False] * _NUMBER_KINDS
            if piece[:1] in _SHARE_OPENINGS:
                kinds[_SHARE] = _HAS["share"].fullmatch(piece) is not None
        kinds[-1] = kinds[-1] or _BARE_NUMBER.fullmatch(piece) is not None
        tail = _unit_tail(piece)
    title = piece.startswith("《") and _TITLE_SPAN.fullmatch(piece) is not None
    has_unit = bool(tail) and bool(question.unit) and question.unit.startswith(tail)
    inside = any(map(piece.__contains__, question.words))
    return (*kinds, title, has_unit, inside), len(tail) if has_unit else 0


_NUMBER_PATTERNS = tuple(_HAS[kind] for kind in ASK_KINDS[:_NUMBER_KINDS])
_SHARE = ASK_KINDS.index("share")
_SHARE_OPENINGS = ("分", "一", "半")  # the share pattern's openings other than a digit
_TITLE_SPAN = re.compile(r"《[^》]+》")


# --- Models ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Linear:
    """A linear scorer over standardised features: ((x − mean) / scale) · coef + intercept.

    The models are conditional logits: a softmax over one question's rows (its passages, its
    sentences, or its sentence's spans) gives each row's probability of being the right one.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds of each row (rows × features)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.features))
        return ((rows - self.mean) / self.scale) @ self.coef + self.intercept

    @classmethod
    def from_json(cls, data: dict[str, object], expected: tuple[str, ...]) -> Linear:
        """Read one model; its feature list must be the code's."""
        _check_features(data, expected)
        vector = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")}
        return cls(expected, vector["mean"], vector["scale"], vector["coef"],
                   float(data["intercept"]))  # type: ignore[arg-type]  # fmt: skip

    def to_json(self) -> dict[str, object]:
        """The model as JSON-ready lists (rounded: the file is meant to be read in a diff)."""
        return {
            "features": list(self.features),
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "coef": [round(float(v), 6) for v in self.coef],
            "intercept": round(self.intercept, 6),
        }


@dataclass(frozen=True, slots=True)
class Trees:
    """Boosted regression trees: a row's log-odds is the sum of the leaf it reaches in each tree.

    The span model: a linear model cannot make a feature count only for some questions (a year
    span helps when the question asks for a year, and hurts otherwise), which a tree's splits
    do. All trees' splits and leaves are flat arrays in LightGBM's layout (a child c ≥ 0 is
    split c, c < 0 is leaf ~c), summed in C by `retrieval.kernels.forest_sums`; the JSON keeps
    one object of arrays a tree, with split and leaf numbers counted within the tree.
    """

    features: tuple[str, ...]
    feature: np.ndarray  # int64 per split: the column it looks at
    threshold: np.ndarray  # per split: a row goes left when its value is at most this
    left: np.ndarray  # int64 per split: the child (split c ≥ 0, or leaf ~c)
    right: np.ndarray
    value: np.ndarray  # per leaf: its log-odds
    roots: np.ndarray  # int64 per tree: its first split (or its only leaf, ~c)
    # The same trees laid out for the C loop, by feature (`kernels.Forest`), made once.
    layout: kernels.Forest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layout = kernels.Forest.of(self.feature, self.threshold, self.left, self.right,
                                   self.value, self.roots, len(self.features))  # fmt: skip
        object.__setattr__(self, "layout", layout)

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """Log-odds of each row (rows × features)."""
        rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(self.features))
        return kernels.forest_sums(rows, self.layout)

    @classmethod
    def from_json(cls, data: dict[str, object], expected: tuple[str, ...]) -> Trees:
        """Read the trees; their feature list must be the code's."""
        _check_features(data, expected)
        trees: list[dict[str, list[float]]] = data["trees"]  # type: ignore[assignment]
        splits = np.array([len(tree["feature"]) for tree in trees], dtype=np.int64)
        leaves = np.array([len(tree["value"]) for tree in trees], dtype=np.int64)
        first_split, first_leaf = np.cumsum(splits) - splits, np.cumsum(leaves) - leaves

        def joined(key: str, dtype: type) -> np.ndarray:
            return np.asarray([v for tree in trees for v in tree[key]], dtype=dtype)

        def children(key: str) -> np.ndarray:
            local = joined(key, np.int64)
            split_at, leaf_at = np.repeat(first_split, splits), np.repeat(first_leaf, splits)
            return np.where(local >= 0, local + split_at, ~(~local + leaf_at))

        roots = np.where(splits > 0, first_split, ~first_leaf)
        return cls(expected, joined("feature", np.int64), joined("threshold", np.float64),
                   children("left"), children("right"), joined("value", np.float64),
                   roots)  # fmt: skip

    def to_json(self) -> dict[str, object]:
        """The trees as JSON-ready lists, split and leaf numbers counted within each tree."""
        # Each tree's splits and leaves are consecutive, and a tree has one leaf more than
        # splits: tree t's first leaf is its first split's number + t.
        number = np.arange(len(self.roots))
        starts = np.where(self.roots >= 0, self.roots, ~self.roots - number).tolist()
        ends = [*starts[1:], len(self.feature)]
        trees = []
        for tree, (start, end) in enumerate(zip(starts, ends, strict=True)):
            left, right = self.left[start:end], self.right[start:end]
            trees.append({
                "feature": self.feature[start:end].tolist(),
                "threshold": self.threshold[start:end].tolist(),
                "left": np.where(left >= 0, left - start, ~(~left - start - tree)).tolist(),
                "right": np.where(right >= 0, right - start, ~(~right - start - tree)).tolist(),
                "value": self.value[start + tree : end + tree + 1].tolist(),
            })  # fmt: skip
        return {"features": list(self.features), "trees": trees}


def _check_features(data: dict[str, object], expected: tuple[str, ...]) -> None:
    """Refuse a model whose feature list is not the code's."""
    listed = data["features"]
    features = tuple(str(name) for name in listed) if isinstance(listed, list) else ()
    if features != expected:
        raise RetrievalError(
            "The reader weights were trained for other features. Retrain them with "
            "`python -m retrieval.train_reader`."
        )


@dataclass(frozen=True, slots=True)
class Weights:
    """The three models (the span model's trees, the others linear) and the span threshold."""

    sentence: Linear
    passage: Linear
    span: Trees
    span_threshold: float
    meta: dict[str, object]

    @classmethod
    def load(cls, path: Path | None = None) -> Weights:
        """Read the shipped weights (or those at `path`)."""
        try:
            if path is None:
                text = resources.files("retrieval").joinpath(WEIGHTS_FILE).read_text("utf-8")
            else:
                text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, ValueError) as error:
            raise RetrievalError(
                f"Cannot read the reader weights ({error}). Reinstall the package or run "
                "`python -m retrieval.train_reader`."
            ) from error
        if data.get("version") != WEIGHTS_VERSION:
            raise RetrievalError(
                "The reader weights are of another version. Retrain them with "
                "`python -m retrieval.train_reader`."
            )
        return cls(
            Linear.from_json(data["sentence"], names(SENTENCE_GROUPS)),
            Linear.from_json(data["passage"], names(PASSAGE_GROUPS)),
            Trees.from_json(data["span"], names(SPAN_GROUPS)),
            float(data["span_threshold"]),
            dict(data.get("meta", {})),
        )

    def to_json(self) -> str:
        """The weights file's text."""
        data = {
            "version": WEIGHTS_VERSION,
            "meta": self.meta,
            "span_threshold": round(self.span_threshold, 4),
            "sentence": self.sentence.to_json(),
            "passage": self.passage.to_json(),
            "span": self.span.to_json(),
        }
        text = json.dumps(data, ensure_ascii=False, indent=1)
        # One line per array of a tree: hundreds of trees a number a line would be 100k lines.
        span = text.index('\n "span": {')
        return text[:span] + _NUMBER_LIST.sub(_one_line, text[span:]) + "\n"


_NUMBER_LIST = re.compile(r"\[[-\d.e+,\s]*\]")


def _one_line(match: re.Match[str]) -> str:
    """A JSON list of numbers on one line."""
    return json.dumps(json.loads(match.group()))


def expected_f1_best(starts: np.ndarray, ends: np.ndarray, logits: np.ndarray) -> int:
    """The span with the highest F1 expected under the model's distribution over the spans.

    All spans are pieces of one sentence, so two of them share exactly their overlap: a span
    that overlaps the likely answers well beats a short one that is only most likely.
    """
    probs = np.exp(logits - logits.max())
    # Spans a thousand times less likely than the best add next to nothing to any span's
    # expected F1: the spans × likely spans table is about a tenth of spans × spans.
    likely = np.flatnonzero(probs >= _UNLIKELY)
    # The spans × likely spans F1 table in C: numpy spent most of the time on its temporaries.
    f1 = kernels.span_f1(starts, ends, likely)
    return int(np.argmax(f1 @ probs[likely]))


_UNLIKELY = 1e-3  # a span's probability against the likeliest's, below which it is left out


@dataclass(frozen=True, slots=True)
class Reading:
    """What the reader made of the candidates: their new order, and the answer."""

    order: tuple[int, ...]  # indices into the candidates, best first
    answer: Answer | None
    chances: tuple[float, ...] = ()  # each candidate's probability of being the right passage


class Reader:
    """Scores sentences, passages and spans of BM25's candidates with the learned weights."""

    def __init__(self, weights: Weights, tokenizer: Tokenizer) -> None:
        self.weights = weights
        self.tokenizer = tokenizer

    def read(
        self,
        question: str,
        words: Sequence[str],
        idf: Sequence[float],
        candidates: Sequence[Candidate],
    ) -> Reading:
        """Reorder the candidates by their best evidence and pick the answer sentence and span."""
        view = QuestionView.make(question, words, idf)
        if not candidates or not view.words:
            return Reading(tuple(range(len(candidates))), None)
        sentences = [Sentences.of(c.passage.text, view, c.folded) for c in candidates]
        passage_scores = self.weights.passage.logits(passage_rows(view, candidates, sentences))
        order = tuple(int(i) for i in np.argsort(-passage_scores, kind="stable"))
        shares = np.exp(passage_scores - passage_scores.max())
        chances = tuple(float(v) for v in shares / shares.sum())
        pool = order[:SENTENCE_POOL]
        rows = sentence_rows(
            view, candidates, sentences, pool, passage_scores, self.tokenizer, gaps=False
        )
        if not rows:
            return Reading(order, None, chances)
        scores = self.weights.sentence.logits(gap_table(rows))
        best = rows[int(np.argmax(scores))]
        passage = candidates[best.candidate].passage
        sentence = passage.text[best.start : best.end].strip()
        short = self.short_span(view, sentence)
        return Reading(order, Answer(sentence, (), passage.passage_id, short=short), chances)

    def short_span(self, view: QuestionView, sentence: str) -> tuple[int, int] | None:
        """The span of the sentence that answers, or None when the model is not confident."""
        spans = span_table(view, sentence, self.tokenizer)
        if not len(spans.starts):
            return None
        logits = self.weights.span.logits(spans.features)
        best = int(np.argmax(logits))
        # The model is a softmax over the sentence's spans: its share is the confidence.
        if 1 / np.exp(logits - logits[best]).sum() < self.weights.span_threshold:
            return None
        # Confidence is the likeliest span's share; the span given is the one expected to score
        # best (CMRC dev: F1 0.428 → 0.469, EM 0.244 → 0.255 against the likeliest).
        best = expected_f1_best(spans.starts, spans.ends, logits)
        start, end = int(spans.starts[best]), int(spans.ends[best])
        # fold() keeps NFKC lengths; where NFKC changed the length, the offsets may drift.
        if len(fold(sentence)) != len(sentence):
            return None
        return start, end
