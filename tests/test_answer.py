"""Answer sentences, what a question asks for, highlights and snippets."""

from __future__ import annotations

import pytest

from retrieval.answer import highlights, snippet_span, wanted
from retrieval.models import Hit, Passage, Source
from retrieval.passages import sentence_spans
from retrieval.query import Query
from retrieval.tokenize import Tokenizer
from tests.conftest import REPO


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_config(REPO / "config")


@pytest.mark.parametrize(
    ("question", "fits", "misses"),
    [
        ("有几名歌手登上了央视大舞台", "并有7名歌手登上央视", "歌手大赛举办了12场"),
        ("许家沟乡污水管网管道总长多少米", "管道总长87000余米", "同步实施20个村项目"),
        ("损失金额占多少", "占造成损失金额的三分之一左右", "损失金额最大"),
        ("工人文化宫建于哪一年", "建成于1957年", "建成于8月15日"),
    ],
)
def test_wanted_tells_a_fitting_sentence(question: str, fits: str, misses: str) -> None:
    want = wanted(question)
    assert want is not None
    assert want.exact.search(fits) and not want.exact.search(misses)


def test_no_wanted_pattern_for_plain_questions() -> None:
    assert wanted("什集镇给辖区居民发放了什么宣传材料") is None


def test_highlights_cover_numbers_with_units() -> None:
    sentence = "像这样的爱心暑托班,溧阳还有40多家,覆盖20万余人,增长10.5%。"
    marked = [sentence[s:e] for s, e in highlights(sentence)]
    assert marked == ["40多家", "20万余人", "10.5%"]


def test_snippet_is_whole_sentences_around_the_best_one(tokenizer: Tokenizer) -> None:
    filler = "这是一句与问题无关的话,只为把段落拉长到超过限制。" * 1
    text = filler * 6 + "像这样的爱心暑托班,溧阳还有40多家。" + filler * 6
    question = "溧阳暑托班有多少家"
    start, end = snippet_span(text, Query.of(question, tokenizer), max_chars=80)
    assert "溧阳还有40多家" in text[start:end] and end - start <= 80
    bounds = {s for s, _ in sentence_spans(text)} | {e for _, e in sentence_spans(text)}
    assert start in bounds and end in bounds
    hit = Hit(1, 1.0, Passage("a#0.0", text, Source("a", None, 0, 0, len(text))), (start, end))
    assert hit.snippet_text.startswith("…") and hit.snippet_text.endswith("…")


def test_short_passage_is_shown_whole(tokenizer: Tokenizer) -> None:
    text = "短段落。只有两句。"
    assert snippet_span(text, Query.of("短段落", tokenizer)) == (0, len(text))


def test_answer_prefers_the_sentence_with_the_asked_unit(seed_searcher) -> None:  # type: ignore[no-untyped-def]
    result = seed_searcher.ask("许家沟乡污水管网管道总长多少米")
    assert result.answer is not None and "87000余米" in result.answer.sentence
    assert any(
        result.answer.sentence[s:e].startswith("87000") for s, e in result.answer.highlights
    )
