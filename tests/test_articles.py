"""Articles: a file's cleaned paragraphs split by headline into titled bodies."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from retrieval.archive import clean_text, is_byline
from retrieval.articles import paragraph_kind, split_articles
from retrieval.models import Article

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
CMRC = REPO.parent / "shared" / "eval" / "cmrc2018_dev"


@cache
def seed(name: str) -> tuple[list[str], list[Article]]:
    """Cleaned paragraphs and articles of the seed file whose name starts with `name`."""
    (path,) = SEEDS.glob(f"{name}*.txt")
    paragraphs = clean_text(path.read_text(encoding="utf-8"))
    return paragraphs, split_articles(paragraphs)


def titled(articles: list[Article], title: str) -> Article:
    """The one article with this title."""
    (article,) = [article for article in articles if article.title == title]
    return article


def test_kinds_of_paragraphs() -> None:
    assert paragraph_kind("溧阳工会爱心暑托班点亮多彩假期") == "title"
    assert paragraph_kind("## 爱心托管班缓解暑期看护难") == "title"
    assert paragraph_kind("——殷都区推进反电信网络诈骗工作侧记") == "title"
    for byline in (
        "□本报记者 梁亚杰",
        "记者 吴文龙 通讯员 段德武 徐恰",
        "据新华社",
        "刘璇 吴文龙摄",
    ):
        assert paragraph_kind(byline) == "byline"
    assert paragraph_kind("本报讯(记者 梁亚杰)10月21日,殷都区政协组织调研。") == "body"
    assert paragraph_kind("金。”洪恒亮说。") == "body"


def test_seed_000_articles_by_headline() -> None:
    _, articles = seed("000")
    article = titled(articles, "溧阳工会爱心暑托班点亮多彩假期")
    assert any("像这样的爱心暑托班,溧阳还有40多家" in p for p in article.paragraphs)
    assert article.paragraphs[0].startswith("今年暑假,溧阳市总工会牵头开办的爱心暑托班")
    assert articles[0].title == "睽违三载 初心不改 常州市工人文化宫焕新归来"
    assert "平安电力以“零违章”确保“零事故”" in [a.title for a in articles]


def test_bylines_are_neither_title_nor_body() -> None:
    paragraphs, articles = seed("003")
    first = articles[0]
    assert first.title == "构筑反诈“防火墙” 守护群众“钱袋子” ——殷都区推进反电信网络诈骗工作侧记"
    assert paragraphs[first.first_paragraph - 1] == "□本报记者 梁亚杰"
    assert first.paragraphs[0].startswith("电信网络诈骗以网络交友、刷单等为幌子")
    _, articles = seed("000")
    assert not any(is_byline(p) for a in articles for p in (a.paragraphs[0], a.paragraphs[-1]))


def test_markdown_heading_marks_are_stripped() -> None:
    _, articles = seed("002")
    assert [a.title for a in articles] == [
        "魅力鄄城 鄄城县召开全县打击治理电信网络诈骗工作推进会议 "
        "提高全民反诈意识 最大限度减少群众财产损失",
        "爱心托管班缓解暑期看护难",
        "“护苗”行动 为青少年健康成长保驾护航",
        "筑牢反诈“防火墙” 守护群众“钱袋子”",
    ]


def test_text_before_the_first_headline_has_no_title() -> None:
    _, articles = seed("004")
    assert articles[0].title is None and articles[0].first_paragraph == 0
    assert articles[0].paragraphs[0].startswith("“电诈是可预防性犯罪,事后打击不如事先防范。”")
    assert titled(articles, "捂紧百姓钱袋子 构建反诈新格局").paragraphs[0].startswith("刷单")


def test_body_after_a_closing_byline_is_an_untitled_article() -> None:
    # 000: "...“护航”。冯娜" / "本栏编辑 胡乐红" / "一公司法人代表..." (its headline is elsewhere)
    _, articles = seed("000")
    index = [a.title for a in articles].index("一线职工为金坛区总送锦旗")
    assert articles[index + 1].title is None
    assert articles[index + 1].paragraphs[0].startswith("一公司法人代表被骗子利用人工智能")


@pytest.mark.parametrize("name", ["000", "001", "002", "003", "004"])
def test_articles_are_numbered_contiguous_and_never_empty(name: str) -> None:
    paragraphs, articles = seed(name)
    assert [a.number for a in articles] == list(range(len(articles)))
    for article in articles:
        assert article.paragraphs
        start = article.first_paragraph
        assert article.paragraphs == tuple(paragraphs[start : start + len(article.paragraphs)])
        assert article.title is None or article.title.strip() == article.title != ""


def test_consecutive_headlines_make_one_title() -> None:
    articles = split_articles(
        ["奋斗百年路 启航新征程", "许家沟乡:", "推进污水管网改造", "正文一句。"]
    )
    assert [(a.title, a.paragraphs) for a in articles] == [
        ("奋斗百年路 启航新征程 许家沟乡: 推进污水管网改造", ("正文一句。",))
    ]


def test_a_headline_without_body_is_kept_as_body() -> None:
    # 003 ends with a photo caption after the last body paragraph.
    articles = split_articles(["标题", "正文一句。", "南子针村污水管网铺设完工的路面"])
    assert [(a.title, a.paragraphs) for a in articles] == [
        ("标题", ("正文一句。", "南子针村污水管网铺设完工的路面"))
    ]
    # A title-only pair: the first line titles the second.
    articles = split_articles(["一个标题", "又一行"])
    assert [(a.title, a.paragraphs, a.first_paragraph) for a in articles] == [
        ("一个标题", ("又一行",), 1)
    ]
    # After a closing byline the caption is text of its own.
    articles = split_articles(["标题", "正文一句。", "记者 吴文龙", "图片说明文字"])
    assert [(a.title, a.paragraphs) for a in articles] == [
        ("标题", ("正文一句。",)),
        (None, ("图片说明文字",)),
    ]
    assert split_articles([]) == []
    assert split_articles(["□本报记者 梁亚杰"]) == []


def test_first_paragraph_points_past_title_and_byline() -> None:
    paragraphs = [
        "正文之前的一句。",
        "## 标题",
        "——副题",
        "□本报记者 梁亚杰",
        "第一段。",
        "第二段。",
    ]
    articles = split_articles(paragraphs)
    assert [(a.number, a.title, a.first_paragraph) for a in articles] == [
        (0, None, 0),
        (1, "标题 ——副题", 4),
    ]
    assert articles[1].paragraphs == ("第一段。", "第二段。")


@pytest.mark.skipif(not CMRC.exists(), reason="CMRC 2018 eval set not in ../shared/eval")
def test_cmrc_files_are_one_article_titled_by_their_first_line() -> None:
    paths = sorted(CMRC.glob("archive/*.txt"))
    good = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        articles = split_articles(clean_text(text))
        first_line = clean_text(text.split("\n")[0] or "-")[0]
        good += len(articles) == 1 and articles[0].title == first_line
    assert good >= 0.99 * len(paths)
