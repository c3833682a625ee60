"""Dates: page dates from paths and mastheads, asked dates in questions, fit and re-ranking."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.dates import (
    DateAsk,
    asked_dates,
    date_fit,
    date_from_path,
    date_from_text,
    page_date,
    prefer_dates,
)

D = date(2025, 4, 5)
HAN = "〇一二三四五六七八九"


@pytest.mark.parametrize(
    "path",
    [
        "2025/20250405.txt",
        "2025-04-05.txt",
        "rmrb/2025/04/05/03.txt",
        "晚报_2025_04_05_第3版.txt",
        "news/2025/rmrb20250405-03.txt",
        "2025.4.5/第一版.txt",
        "２０２５-０４-０５.txt",
        "old/2024-01-01/2025-04-05.txt",  # the most specific (last) date wins
    ],
)
def test_path_dates(path: str) -> None:
    assert date_from_path(path) == D


@pytest.mark.parametrize(
    "path",
    [
        "2025-13-40.txt",  # not a date
        "20251340.txt",
        "000_f1c283b55319c401.txt",  # the seeds: hashes, no date
        "12025040512.txt",  # 8 digits inside a longer number
        "2025411.txt",  # 7 digits: 4-11 or 41-1
        "2025/04/x.txt",  # no day
        "1700-01-01.txt",  # before newspapers
        "2025-04_05.txt",  # two different separators
    ],
)
def test_paths_without_a_date(path: str) -> None:
    assert date_from_path(path) is None


@pytest.mark.parametrize(
    "text",
    [
        "人民日报\n2025年4月5日 星期六\n农历乙巳年三月初八\n\n正文。",
        "二〇二五年四月五日 星期六",
        "二○二五年四月五日",  # a circle (U+25CB) OCR'd for 〇
        "２０２５年 ４ 月 ５ 日",
        "  2025 年 4 月 5 日 星期六 第12345期 今日8版",
        "\n\n\n常州日报\n\n2025年4月5日\n",
    ],
)
def test_masthead_dates(text: str) -> None:
    assert date_from_text(text) == D


def test_masthead_with_weekday_and_lunar_date_may_be_long() -> None:
    line = "2025年4月5日 星期六 农历乙巳年三月初八 " + "国内统一连续出版物号" * 3
    assert date_from_text(line) == D


@pytest.mark.parametrize(
    "text",
    [
        "2025年13月5日 星期六",  # invalid
        "2025年4月5日,全市召开会议,部署下一阶段的防汛抗旱和安全生产各项工作任务。",  # a lede
        "8月1日鄄城县文旅局联合县综合行政执法局开展检查行动。",  # no year (seeds/002)
        "2008年5月12日起，由富士电视台于每星期一21:00播出",  # prose naming a weekday
        "该刊于1976年11月3日创刊，每月出版",  # a short sentence, not a masthead
        "",
    ],
)
def test_texts_without_a_masthead(text: str) -> None:
    assert date_from_text(text) is None


def test_masthead_only_near_the_top() -> None:
    text = "\n".join(["标题", *(f"第{i}段。" for i in range(10)), "2025年4月5日"])
    assert date_from_text(text) is None
    assert date_from_text(text, lines=20) == D


def test_page_date_prefers_the_path() -> None:
    masthead = "2024年1月1日 星期一\n正文"
    assert page_date("2025/20250405.txt", masthead) == D
    assert page_date("scans/000_f1c2.txt", masthead) == date(2024, 1, 1)
    assert page_date("scans/000_f1c2.txt", "正文") is None


@pytest.mark.parametrize(
    ("question", "ask"),
    [
        ("2025年4月5日发布了什么", DateAsk(2025, 4, 5)),
        ("2025年4月的CPI", DateAsk(2025, 4)),
        ("2025年粮食产量", DateAsk(2025)),
        ("4月5号的会议", DateAsk(None, 4, 5)),
        ("五月份CPI同比上涨多少", DateAsk(None, 5)),
        ("二〇二四年十二月的CPI", DateAsk(2024, 12)),
        ("一九四九年十月一日", DateAsk(1949, 10, 1)),
        ("十二月三十一日", DateAsk(None, 12, 31)),
        ("２０２５年４月", DateAsk(2025, 4)),
        ("2024年第一季度GDP", DateAsk(2024)),
    ],
)
def test_asked_dates(question: str, ask: DateAsk) -> None:
    assert asked_dates(question) == ask


@pytest.mark.parametrize(
    "question",
    ["溧阳暑托班有多少家", "1至4月进出口", "近三年来", "14月", "3个月", "2月30日", "去年的产量"],
)
def test_questions_without_a_date(question: str) -> None:
    assert asked_dates(question) is None


@pytest.mark.parametrize(
    ("ask", "page", "fit"),
    [
        (DateAsk(2025, 4, 5), D, 1.0),
        (DateAsk(2025, 4, 5), date(2025, 4, 7), 2 / 3),
        (DateAsk(2025, 4, 5), date(2025, 9, 5), 1 / 3),
        (DateAsk(2025, 4, 5), date(2024, 4, 5), -1.0),
        (DateAsk(2025), date(2025, 12, 31), 1.0),
        (DateAsk(None, 4, 5), date(2019, 4, 5), 1.0),
        (DateAsk(None, 4), date(2019, 3, 30), -1.0),
        (DateAsk(2025, 4), None, 0.0),
        (None, D, 0.0),
    ],
)
def test_date_fit_without_report_window(ask: DateAsk, page: date | None, fit: float) -> None:
    assert date_fit(ask, page, report_days=0) == pytest.approx(fit)


def test_pages_soon_after_an_asked_period_report_on_it() -> None:
    may_cpi, year = DateAsk(2023, 5), DateAsk(2023)
    assert date_fit(may_cpi, date(2023, 6, 9)) == 1.0  # "5月份CPI" airs on 6月9日
    assert date_fit(may_cpi, date(2023, 8, 9)) == 0.5  # too late: only the year fits
    assert date_fit(year, date(2024, 1, 12)) == 1.0  # the year's CPI airs in January
    assert date_fit(year, date(2024, 3, 1)) == -1.0
    assert date_fit(DateAsk(None, 12), date(2024, 1, 10)) == 1.0  # December of 2023
    assert date_fit(DateAsk(2023, 5, 9), date(2023, 6, 9)) == 1 / 3  # a day is an event


def test_prefer_dates_reorders_by_fit_and_keeps_ties() -> None:
    ask = asked_dates("2023年3月9日发布的CPI")
    scored = [(2.0, date(2024, 3, 9)), (1.5, date(2023, 3, 9)), (1.0, None), (0.9, None)]
    assert prefer_dates(scored, ask) == [0.0, 3.0, 1.0, 0.9]
    assert prefer_dates(scored, ask, weight=0.0) == [2.0, 1.5, 1.0, 0.9]
    assert prefer_dates(scored, None) == [2.0, 1.5, 1.0, 0.9]


@given(st.dates(min_value=date(1800, 1, 1), max_value=date(2100, 12, 31)))
def test_every_date_round_trips_through_paths_and_mastheads(day: date) -> None:
    assert date_from_path(f"{day.year}/{day:%Y%m%d}.txt") == day
    assert date_from_path(f"{day.isoformat()}.txt") == day
    assert date_from_text(f"{day.year}年{day.month}月{day.day}日 星期一") == day
    han_year = "".join(HAN[int(d)] for d in str(day.year))
    assert date_from_text(f"{han_year}年{_han(day.month)}月{_han(day.day)}日") == day
    assert asked_dates(f"{day.year}年{day.month}月{day.day}日发生了什么") == DateAsk(
        day.year, day.month, day.day
    )


@given(st.text(max_size=40), st.dates(min_value=date(1800, 1, 1)), st.floats(0, 100))
def test_fit_is_bounded_and_scores_never_grow_more_than_the_weight(
    question: str, day: date, score: float
) -> None:
    ask = asked_dates(question)
    assert -1.0 <= date_fit(ask, day) <= 1.0
    [reweighted] = prefer_dates([(score, day)], ask, weight=1.0)
    assert 0.0 <= reweighted <= 2 * score + 1e-9


def test_report_window_is_measured_from_the_period_end() -> None:
    end = date(2023, 6, 1)
    assert date_fit(DateAsk(2023, 5), end + timedelta(days=44)) == 1.0
    assert date_fit(DateAsk(2023, 5), end + timedelta(days=45)) == 0.5


def _han(number: int) -> str:
    """A Han number up to 31: 五, 十, 十二, 二十, 三十一."""
    tens, ones = divmod(number, 10)
    return (HAN[tens] if tens > 1 else "") + ("十" if tens else "") + (HAN[ones] if ones else "")
