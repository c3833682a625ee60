"""Short ids, page dates and whole articles through a real build: ids stable across builds, the
date column from the path or the masthead, articles rebuilt from their passages, stale ids."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from unittest import mock

import pytest

from retrieval.archive import clean_text
from retrieval.articles import split_articles
from retrieval.errors import IndexBuildError, PassageGoneError
from retrieval.ids import MalformedIdError, id_of
from retrieval.passages import article_body
from retrieval.reading import CHECK_CHARS, text_check
from retrieval.search import Searcher
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer

BRIDGE = """长江大桥通车

本报讯 昨日,新建的长江大桥正式通车,全长1200米,双向六车道。大桥历时三年建成。

市民王先生说,过江时间从四十分钟缩短到十分钟。沿江的商户也盼着客流。

茶叶节开幕

第十届茶叶节在龙井村开幕,吸引游客3万人次。
"""
MASTHEAD = "晚报\n2021年5月4日 星期二\n\n体育新闻\n\n女排夺得世界杯冠军,这是第十一次夺冠。\n"
HARVEST = "粮食生产\n\n全国粮食总产量再创新高,达到{}亿斤,秋粮丰收。\n"


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    folder = tmp_path / "archive"
    (folder / "2023").mkdir(parents=True)
    (folder / "2023" / "20230816.txt").write_text(BRIDGE, "utf-8")
    (folder / "sport.txt").write_text(MASTHEAD, "utf-8")
    (folder / "2022" / "08").mkdir(parents=True)
    (folder / "2022" / "08" / "2022-08-20.txt").write_text(HARVEST.format(13731), "utf-8")
    (folder / "2024" / "08").mkdir(parents=True)
    (folder / "2024" / "08" / "2024-08-20.txt").write_text(HARVEST.format(14130), "utf-8")
    return folder


def searcher(archive: Path, root: Path, *, max_chars: int = 1000) -> Searcher:
    tokenizer = Tokenizer()
    build_index(archive, root, tokenizer, max_chars=max_chars)
    return Searcher(open_index(root), tokenizer)


def every_id(search: Searcher) -> dict[str, str]:
    table = search.index.passages
    return {id_of(table[i].passage_id): table[i].text for i in range(len(table))}


def test_ids_are_stable_across_builds_and_short(archive: Path, tmp_path: Path) -> None:
    first = every_id(searcher(archive, tmp_path / "one"))
    second = every_id(searcher(archive, tmp_path / "two"))
    assert first == second and len(first) >= 4
    assert all(len(f"page:{key}:99".encode()) <= 64 for key in first)


def test_page_dates_come_from_the_path_else_the_masthead(archive: Path, tmp_path: Path) -> None:
    search = searcher(archive, tmp_path / "index")
    dates = {hit.passage.source.file: hit.passage.source.date for hit in search.search("女排")}
    assert dates == {"sport.txt": date(2021, 5, 4)}
    bridge = search.search("长江大桥", top_k=1)[0].passage.source
    assert bridge.date == date(2023, 8, 16)


def test_no_date_is_none(archive: Path, tmp_path: Path) -> None:
    (archive / "page.txt").write_text("天气预报\n\n明天多云转晴,气温回升。\n", "utf-8")
    search = searcher(archive, tmp_path / "index")
    assert search.search("天气预报", top_k=1)[0].passage.source.date is None


def test_asked_year_prefers_its_pages_on_every_page_of_hits(archive: Path, tmp_path: Path) -> None:
    search = searcher(archive, tmp_path / "index")
    for year in (2022, 2024):
        hits = search.search(f"{year}年全国粮食总产量", top_k=3)
        assert hits[0].passage.source.date == date(year, 8, 20)
        for offset in (1, 2):  # a later page is cut from the same re-ranked order
            later = search.search(f"{year}年全国粮食总产量", top_k=1, offset=offset)
            assert later[0].passage.passage_id == hits[offset].passage.passage_id


def test_whole_article_is_rebuilt_from_its_passages(archive: Path, tmp_path: Path) -> None:
    search = searcher(archive, tmp_path / "index", max_chars=40)  # several passages an article
    hit = search.search("王先生 过江", top_k=1)[0]
    article = search.article(id_of(hit.passage.passage_id))
    body = next(a for a in split_articles(clean_text(BRIDGE)) if a.title == "长江大桥通车")
    assert article.text == article_body(body) and "\n" in article.text
    assert (article.file, article.title, article.date) == (
        "2023/20230816.txt",
        "长江大桥通车",
        date(2023, 8, 16),
    )


def test_unknown_malformed_and_stale_ids(archive: Path, tmp_path: Path) -> None:
    search = searcher(archive, tmp_path / "index")
    hit = search.search("茶叶节", top_k=1)[0]
    old = id_of(hit.passage.passage_id)
    with pytest.raises(MalformedIdError):
        search.article("not-an-id")
    with pytest.raises(PassageGoneError, match="changed"):
        search.article("A" * 16)
    (archive / "2023" / "20230816.txt").write_text("天气\n\n晴。\n", "utf-8")
    rebuilt = searcher(archive, tmp_path / "index")
    with pytest.raises(PassageGoneError, match="Ask the question again"):
        rebuilt.article(old)


def test_two_files_sharing_an_id_key_are_refused(archive: Path, tmp_path: Path) -> None:
    with (
        mock.patch("retrieval.store.file_key", return_value=42),
        pytest.raises(IndexBuildError, match="Rename one"),
    ):
        build_index(archive, tmp_path / "index", Tokenizer())


def test_a_time_no_page_fits_leaves_the_ranking_alone(archive: Path, tmp_path: Path) -> None:
    (archive / "misc.txt").write_text("交通\n\n地铁三号线今天通车。\n", "utf-8")  # no date
    search = searcher(archive, tmp_path / "index")
    best = search.search("2030年长江大桥通车", top_k=1)[0]  # no page of 2030: nothing to prefer
    assert best.passage.source.file == "2023/20230816.txt"


def test_a_check_tells_a_changed_passage_from_the_one_shown(archive: Path, tmp_path: Path) -> None:
    search = searcher(archive, tmp_path / "index")
    shown = search.search("茶叶节", top_k=1)[0].passage
    key = id_of(shown.passage_id)
    assert len(text_check(shown.text)) == CHECK_CHARS
    assert search.article(key, check=text_check(shown.text)).title == "茶叶节开幕"
    with pytest.raises(PassageGoneError):
        search.article(key, check=text_check(shown.text + "。"))
