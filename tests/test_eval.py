"""Retrieval quality: the floors CI holds the project to, and behaviours behind them."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.evaluate import char_f1, evaluate, exact_match, load_questions
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer
from tests.conftest import REPO, SHARED


def test_seed_questions_floor(seed_searcher: Searcher) -> None:
    questions = load_questions(SHARED / "eval" / "seed_qa.jsonl")
    report = evaluate(questions, lambda q: seed_searcher.ask(q, top_k=5))
    assert report.total == 22
    assert report.recall[1] >= 21, report.as_dict()
    assert report.recall[3] == 22, report.as_dict()
    assert report.answer_hits >= 20, report.as_dict()
    assert report.scored == 22 and report.short_f1 > 0, report.as_dict()


@pytest.mark.parametrize(
    ("guess", "answers", "em", "f1"),
    [
        ("40 多家。", ["40多家"], 1.0, 1.0),
        ("溧阳还有40多家", ["40多家"], 0.0, 2 / 3),  # 4 of 8 characters right, all 4 found
        ("1903", ["1903年", "一九〇三年"], 0.0, 8 / 9),  # precision 1, recall 4/5
        ("刘曜", ["石勒", "刘曜"], 1.0, 1.0),  # the best over the annotated answers
        ("五位", ["三位"], 0.0, 0.5),
        ("北京", ["上海"], 0.0, 0.0),
    ],
)
def test_short_answer_measures(guess: str, answers: list[str], em: float, f1: float) -> None:
    assert exact_match(guess, answers) == em
    assert char_f1(guess, answers) == pytest.approx(f1)


# Unrelated pages, so that the archive is large enough for BM25's idf to mean something (with
# Okapi's idf, as in rank-bm25, a term in half of the passages weighs nothing).
FILLER = [
    "春季招聘会举行\n\n市人才市场举办春季招聘会,两百家企业提供岗位三千个。\n",
    "图书馆延长开放\n\n市图书馆从下月起每晚开放到九点,方便读者借阅。\n",
    "公园新增步道\n\n滨江公园新建健身步道五公里,市民可免费使用。\n",
    "农产品展销\n\n本届农产品展销会吸引了来自全省的参展商。\n",
    "学校开学\n\n全市中小学今天开学,新生报到秩序井然。\n",
    "医院义诊\n\n市人民医院专家走进社区开展义诊活动,为居民测量血压。\n",
]


def _searcher(tmp_path: Path, files: dict[str, str], **options: object) -> Searcher:
    archive = tmp_path / "archive"
    archive.mkdir(parents=True)
    files = {**{f"filler{i}.txt": text for i, text in enumerate(FILLER)}, **files}
    for name, text in files.items():
        (archive / name).write_text(text, encoding="utf-8")
    tokenizer = Tokenizer.from_config(REPO / "config")
    build_index(archive, tmp_path / "index", tokenizer)
    return Searcher(open_index(tmp_path / "index"), tokenizer, **options)  # type: ignore[arg-type]


TRADITIONAL = "港島電車\n\n香港電車於1904年通車,是全球現存唯一全數採用雙層電車的電車系統。\n"
SIMPLIFIED = "地铁新线\n\n本市地铁五号线今日开通,全长28公里,设车站20座。\n"


def test_traditional_and_simplified_match_each_other(tmp_path: Path) -> None:
    searcher = _searcher(tmp_path, {"hk.txt": TRADITIONAL, "sh.txt": SIMPLIFIED})
    result = searcher.ask("香港电车哪一年通车")  # simplified question, traditional page
    assert result.hits[0].passage.source.file == "hk.txt"
    assert "於1904年" in result.hits[0].passage.text  # shown as written
    assert result.answer is not None and "1904年" in result.answer.sentence
    traditional = searcher.ask("地鐵五號線全長多少公里")  # traditional question, simplified page
    assert traditional.hits[0].passage.source.file == "sh.txt"
    assert traditional.answer is not None and "28公里" in traditional.answer.sentence


def test_repeated_passages_are_shown_once(tmp_path: Path) -> None:
    page = "防汛通知\n\n今晚有暴雨,请市民减少外出。\n"
    searcher = _searcher(tmp_path, {"a.txt": page, "b.txt": page, "c.txt": SIMPLIFIED})
    hits = searcher.search("暴雨 外出", top_k=3)
    assert [h.passage.text for h in hits].count("今晚有暴雨,请市民减少外出。") == 1


def test_synonyms_expand_questions(tmp_path: Path) -> None:
    page = "假期托管\n\n全市开设暑期托管班120个,服务职工子女5000名。\n"
    files = {"a.txt": page, "b.txt": SIMPLIFIED}
    plain = _searcher(tmp_path / "plain", files)
    assert not plain.search("暑托班", top_k=1)
    expanded = _searcher(tmp_path / "syn", files, synonyms=Synonyms([("暑托班", "暑期托管班")]))
    assert expanded.search("暑托班", top_k=1)[0].passage.source.file == "a.txt"
