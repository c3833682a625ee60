"""Passages: windows of whole sentences, slices of the article body, with sources."""

from __future__ import annotations

from retrieval.models import Article
from retrieval.passages import article_body, sentence_spans, split_passages


def _article() -> Article:
    paragraphs = (
        "第一句话。第二句话!第三句“引号里。”",
        "新段落的一句话;还有一句",
        "长" * 50 + "。",
    )
    return Article(number=2, title="标题", paragraphs=paragraphs, first_paragraph=5)


def test_sentences_end_at_punctuation_and_paragraphs() -> None:
    text = "第一句话。第二句话!第三句“引号里。”\n下一段"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "第一句话。",
        "第二句话!",
        "第三句“引号里。”",
        "下一段",
    ]


def test_clauses_end_at_semicolons_unless_whole_sentences_are_asked_for() -> None:
    text = "上游多山地；下游为平原。河口有沙洲"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "上游多山地；",
        "下游为平原。",
        "河口有沙洲",
    ]
    assert [text[s:e] for s, e in sentence_spans(text, clauses=False)] == [
        "上游多山地；下游为平原。",
        "河口有沙洲",
    ]


def test_passages_are_body_slices_of_whole_sentences() -> None:
    article = _article()
    body = article_body(article)
    passages = split_passages(article, file="a/b.txt", max_chars=20)
    assert len(passages) > 1
    for n, passage in enumerate(passages):
        assert passage.text == body[passage.source.start : passage.source.end]
        assert passage.passage_id == f"a/b.txt#2.{n}"
        assert passage.source.title == "标题" and passage.source.file == "a/b.txt"
        assert len(passage.text) <= 20 or "。" not in passage.text[:-1]  # one long sentence
    assert passages[0].source.paragraph == 5
    assert passages[-1].source.paragraph == 7
    joined = "".join(body[p.source.start : p.source.end] for p in passages)
    assert joined.replace("\n", "") == body.replace("\n", "")


def test_everything_in_one_passage_when_it_fits() -> None:
    passages = split_passages(_article(), file="x.txt", max_chars=1000)
    assert len(passages) == 1 and passages[0].text == article_body(_article())
