"""Dates of pages and of questions: which day a page was printed, which time a question names.

Part of step "ranked passages": a page's date is read once at build time (`page_date`), a
question's date at query time (`asked_dates`), and `prefer_dates` moves the hits of the named
time up the ranking.

A page's date comes from its path or, failing that, from its masthead:

    date_from_path("2025/20250405.txt")          -> 2025-04-05
    date_from_path("rmrb/2025/04/05/03.txt")     -> 2025-04-05
    date_from_path("晚报_2025_04_05_第3版.txt")    -> 2025-04-05
    date_from_text("人民日报\\n2023年8月16日 星期三\\n农历癸卯年七月初一\\n...")   -> 2023-08-16
    date_from_text("二〇二三年八月十六日 星期三")  -> 2023-08-16

The path wins over the masthead. That is what the large newspaper archives do (Chronicling
America files every page under its issue's date, `/lccn/sn…/1912-04-15/ed-1/seq-1/`; Trove and
the British Newspaper Archive take the issue date from the catalogue record, not the scan): the
path is a date an archivist chose and checked once for the whole issue, while the masthead is
read by OCR, where one wrong digit ("2028年") gives a valid but false date, and the first lines
of a page without a masthead may be an article quoting another day. The masthead is kept as the
fallback for archives whose files are not named by date (scans numbered 000_….txt). Give it the
raw text when there is one: cleaning may join a short masthead line to the headline under it,
and a joined line is only read when it says 星期, 农历 or 第…期.

A question names a time with explicit figures only ("去年", "上个月" are not read):

    asked_dates("2025年4月5日发布了什么")  -> DateAsk(year=2025, month=4, day=5)
    asked_dates("二〇二四年十二月的CPI")   -> DateAsk(year=2024, month=12, day=None)
    asked_dates("4月5号的会议")            -> DateAsk(year=None, month=4, day=5)
    asked_dates("1至4月进出口")             -> None  (a span of months is not one month)

`date_fit` says how well a page date fits (1 to the day, partial credit for the coarser parts,
0 unknown, -1 conflicting; a page soon after an asked month or year may report its figures, so
it fits too) and `prefer_dates` multiplies each score by `1 + weight × fit`; the
weight is measured in `benchmarks/date_preference.py` (see benchmarks/QUALITY.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

__all__ = [
    "DATE_WEIGHT",
    "MASTHEAD_LINES",
    "DateAsk",
    "asked_dates",
    "date_fit",
    "date_from_path",
    "date_from_text",
    "page_date",
    "prefer_dates",
]

DATE_WEIGHT = 1.0  # measured: see benchmarks/QUALITY.md, "Date preference"
REPORT_DAYS = 45  # pages this soon after an asked month or year may report its figures...
REPORT_FIT = 1.0  # ... and fit as well as the period itself (monthly data come out ~10 days on)
MASTHEAD_LINES = 8  # non-empty lines from the top of a page searched for a masthead
MASTHEAD_MAX_CHARS = 30  # a longer line is an article's lede that happens to open with a date
_PROSE = re.compile(r"[，,。；;！!？?：:（(]")  # a sentence's punctuation: not a masthead
_MASTHEAD_WORDS = re.compile(r"星期|礼拜|农历|周[一二三四五六日天]|第\s*\d+\s*期")
FIRST_YEAR, LAST_YEAR = 1800, 2100  # outside this a match is an id or a figure, not a year

_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_HAN_DIGITS = {"〇": 0, "○": 0, "零": 0, "O": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4}
_HAN_DIGITS |= {"五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_HAN_DIGIT = "〇○零O一二两三四五六七八九"
_HAN_SMALL = f"[{_HAN_DIGIT}十]{{1,3}}"  # 一 … 三十一
_NUM = rf"(?:\d{{1,2}}|{_HAN_SMALL})"
_YEAR = rf"(?:\d{{4}}|[{_HAN_DIGIT}]{{4}})"

# Paths: 8 digits not inside a longer number, or y-m-d with one separator used twice.
_PATH_DATE = re.compile(r"(?<!\d)(\d{4})([-_./]?)(\d{1,2})\2(\d{1,2})(?!\d)")
_TEXT_DATE = re.compile(rf"({_YEAR})\s*年\s*({_NUM})\s*月\s*({_NUM})\s*[日号]")
_ASK = re.compile(
    rf"(?:(?<![\d{_HAN_DIGIT}])({_YEAR})\s*年)?"
    rf"(?:\s*(?<![\d{_HAN_DIGIT}十至到\-—~～、])({_NUM})\s*月份?"
    rf"(?:\s*({_NUM})\s*[日号])?)?"
)


@dataclass(frozen=True, slots=True)
class DateAsk:
    """The time a question names: any of year, month and day (at least one is set)."""

    year: int | None = None
    month: int | None = None
    day: int | None = None


def date_from_path(relative_path: str) -> date | None:
    """The date a file's path names, the last (most specific) valid one, else None."""
    found = None
    for match in _PATH_DATE.finditer(relative_path.translate(_FULL_WIDTH)):
        year, separator, month, day = match.groups()
        if not separator and (len(month), len(day)) != (2, 2):
            continue  # "2025411" could be 4-11 or 41-1: only 8 digits read without separators
        found = _valid(int(year), int(month), int(day)) or found
    return found


def date_from_text(text: str, *, lines: int = MASTHEAD_LINES) -> date | None:
    """The masthead date in a page's first `lines` non-empty lines (raw or cleaned), else None."""
    top = [line.strip() for line in text.translate(_FULL_WIDTH).splitlines() if line.strip()]
    for line in top[:lines]:
        match = _TEXT_DATE.search(line)
        if match is None or not _is_masthead(line):
            continue
        year, month, day = (_number(part) for part in match.groups())
        found = _valid(year, month, day)
        if found is not None:
            return found
    return None


def page_date(path: str, text: str) -> date | None:
    """A page's date: from its path if it names one, else from its masthead."""
    return date_from_path(path) or date_from_text(text)


def asked_dates(question: str) -> DateAsk | None:
    """The year, month and day a question names explicitly (the first such mention), or None."""
    for match in _ASK.finditer(question.translate(_FULL_WIDTH)):
        if match.end() == match.start():  # every part is optional: most places match empty
            continue
        year, month, day = (_number(part) if part else None for part in match.groups())
        ask = DateAsk(year, month, day)
        if ask != DateAsk() and _plausible(ask):
            return ask
    return None


def date_fit(
    ask: DateAsk | None,
    page: date | None,
    *,
    report_days: int = REPORT_DAYS,
    report_fit: float = REPORT_FIT,
) -> float:
    """How well a page date fits the asked time: 1 to the day, parts matched, 0, or -1."""
    if ask is None or page is None:
        return 0.0
    parts = [
        (wanted, got)
        for wanted, got in ((ask.year, page.year), (ask.month, page.month), (ask.day, page.day))
        if wanted is not None
    ]
    matched = 0
    for wanted, got in parts:
        if wanted != got:
            break
        matched += 1
    fit = -1.0 if matched == 0 else matched / len(parts)
    return max(fit, report_fit) if _reports_on(ask, page, days=report_days) else fit


def _reports_on(ask: DateAsk, page: date, *, days: int) -> bool:
    """Whether a page follows the end of an asked month or year by at most `days` days."""
    if ask.day is not None or days <= 0:
        return False  # a day names an event, not a period whose figures come out later
    month = ask.month or 12
    year = ask.year
    if year is None:  # "5月份" read on a page of 2024-01-10 means May of the page's year before
        year = page.year if month <= page.month else page.year - 1
    end = date(year + month // 12, month % 12 + 1, 1)  # the day after the period
    return 0 <= (page - end).days < days


def prefer_dates(
    scored: Sequence[tuple[float, date | None]],
    ask: DateAsk | None,
    *,
    weight: float = DATE_WEIGHT,
    report_days: int = REPORT_DAYS,
    report_fit: float = REPORT_FIT,
) -> list[float]:
    """Scores multiplied by `1 + weight × date_fit`, so a fitting page rises, a conflicting falls.

    Multiplying keeps the scale of the fused BM25 score (no threshold to tune per index) and
    leaves the order among pages of equal fit as BM25 had it; a page with no date keeps its
    score. With the shipped weight 1 a page of the asked day doubles its score and a page of
    another year drops to 0, below every other hit but still listed, in BM25 order. Statistics
    come out after their period ("5月份CPI" airs on 6月9日), so a page up to `report_days`
    after an asked month or year fits with `report_fit` instead of conflicting. Measured on 35
    questions (benchmarks/QUALITY.md): recall@1 14 → 28 of 35; weight 0.5 gives the same @1.
    """
    fits = [
        date_fit(ask, day, report_days=report_days, report_fit=report_fit) for _, day in scored
    ]
    return [score * (1.0 + weight * fit) for (score, _), fit in zip(scored, fits, strict=True)]


def _is_masthead(line: str) -> bool:
    """Whether a line that holds a date reads as a masthead rather than an article's lede.

    A masthead is a list of items (paper, date, weekday, issue), never a sentence: a line with
    sentence punctuation is prose that mentions a date ("该剧于2009年4月14日起，每周星期二…").
    """
    if _PROSE.search(line):
        return False
    return len(line) <= MASTHEAD_MAX_CHARS or _MASTHEAD_WORDS.search(line) is not None


def _valid(year: int, month: int, day: int) -> date | None:
    """The date, if the three numbers make one in the years newspapers were printed."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _plausible(ask: DateAsk) -> bool:
    """Whether every part of an asked date is in range (a day is checked against its month)."""
    if ask.year is not None and not FIRST_YEAR <= ask.year <= LAST_YEAR:
        return False
    if ask.month is not None and not 1 <= ask.month <= 12:
        return False
    if ask.day is not None:
        return ask.month is not None and _valid(ask.year or 2000, ask.month, ask.day) is not None
    return True


def _number(text: str) -> int:
    """An Arabic number, a digit-by-digit Han year ("二〇二三") or a Han number up to 99."""
    if text.isdigit() and text.isascii():
        return int(text)
    if "十" not in text:
        return int("".join(str(_HAN_DIGITS[ch]) for ch in text))
    tens, _, ones = text.partition("十")
    if len(tens) > 1 or len(ones) > 1 or "十" in ones:
        return -1  # "二十十", "一二十": not a number, so never a valid date part
    return (_HAN_DIGITS[tens] if tens else 1) * 10 + (_HAN_DIGITS[ones] if ones else 0)
