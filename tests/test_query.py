"""A question worked out once: its Query, and search, answer and snippet reading it."""

from __future__ import annotations

from pathlib import Path

from retrieval.chars import is_han, nfkc
from retrieval.models import parse_passage_id, passage_id
from retrieval.query import MAX_QUESTION_CHARS, Query, Synonyms
from retrieval.search import Searcher
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer, Tokens
from tests.conftest import REPO

SYNONYMS = Synonyms([["暑托班", "暑期托管班"]])
CONFIG = REPO / "config"
OTHERS = ("体育新闻\n\n女排夺得世界杯冠军。\n", "长江大桥\n\n长江大桥正式通车。\n")


def _archive(root: Path) -> Path:
    """An archive where only one passage speaks of 暑期托管班 (three, so idf is positive)."""
    root.mkdir()
    text = "暑期托管\n\n今年夏天,溧阳共有40多家暑期托管班开班。另有一句。\n"
    (root / "a.txt").write_text(text, "utf-8")
    for i, other in enumerate(OTHERS):
        (root / f"other{i}.txt").write_text(other, "utf-8")
    return root


class CountingTokenizer(Tokenizer):
    """A tokenizer that counts how often it segments (a fake, not a mock)."""

    calls = 0

    def folded_tokens(self, folded: str) -> Tokens:
        type(self).calls += 1
        return super().folded_tokens(folded)


def test_query_holds_the_question_worked_out() -> None:
    query = Query.of("溧陽暑托班有多少家?", Tokenizer.from_config(CONFIG), SYNONYMS)
    assert query.text == "溧陽暑托班有多少家?" and query.folded == "溧阳暑托班有多少家?"
    assert query.synonyms == ("暑期托管班",)
    assert query.words[:2] == ("溧阳", "暑托班") and "托管班" in query.words
    assert "暑托" in query.grams and "托管" in query.grams and len(query.bigrams) >= 4
    assert query.wanted is not None and query.wanted.exact.search("有40多家")
    assert [w.words[:2] for w in query.wordings] == [("溧阳", "暑托班"), ("溧阳", "暑期")]
    assert query.searchable and not Query.of("什么?", Tokenizer.from_config(CONFIG)).searchable


def test_search_tokens_equal_tokenizing_the_expanded_question() -> None:
    tokenizer = Tokenizer()
    question = "溧阳暑托班有多少家"
    query = Query.of(question, tokenizer, SYNONYMS)
    whole = tokenizer.tokens(" ".join([question, *SYNONYMS.expand(question)]))
    assert list(query.words) == whole.words and query.bigrams.tolist() == whole.bigrams.tolist()


def test_a_long_question_is_searched_by_its_beginning() -> None:
    query = Query.of("长江" * MAX_QUESTION_CHARS, Tokenizer())
    assert len(query.folded) == MAX_QUESTION_CHARS


def test_ask_tokenizes_the_question_once(tmp_path: Path) -> None:
    build_index(_archive(tmp_path / "archive"), tmp_path / "index", Tokenizer())
    searcher = Searcher(open_index(tmp_path / "index"), CountingTokenizer())
    CountingTokenizer.calls = 0
    result = searcher.ask("溧阳暑托班有多少家")
    assert result.hits and CountingTokenizer.calls == 1 and result.searchable
    assert not searcher.ask("?!……").searchable  # nothing but punctuation


def test_the_answer_sees_the_synonyms_the_search_used(tmp_path: Path) -> None:
    tokenizer = Tokenizer.from_config(CONFIG)
    build_index(_archive(tmp_path / "archive"), tmp_path / "index", tokenizer)
    searcher = Searcher(open_index(tmp_path / "index"), tokenizer, synonyms=SYNONYMS)
    query = searcher.query("溧阳暑托班有多少家")
    result = searcher.ask(query)
    assert result.answer is not None and "40多家暑期托管班" in result.answer.sentence
    assert result.question == query.text


def test_one_han_test_and_one_nfkc() -> None:
    assert all(is_han(c) for c in "桥㐀丽𠀀𰀀") and not any(is_han(c) for c in "a1,。〇ア")
    assert nfkc("２０２３年…ＡＢ") == "2023年…AB" and nfkc("ＡＢ" * 200) == "AB" * 200


def test_passage_ids_round_trip() -> None:
    assert parse_passage_id(passage_id("2023/a#b.txt", 3, 12)) == ("2023/a#b.txt", 3, 12)
