"""The tokenizer: folding, punctuation, stopwords, user words, and equality with jieba."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrieval.chars import nfkc
from retrieval.tokenize import (
    Tokenizer,
    UserWord,
    _common_simplified,
    _t2s_table,
    bigram_keys,
    bigram_strings,
    fold,
    read_userdict,
)
from tests.conftest import REPO, SEEDS, SHARED


def _fields(text: str, tokenizer: Tokenizer) -> tuple[list[str], list[int]]:
    tokens = tokenizer.tokens(text)
    return tokens.words, [int(key) for key in tokens.bigrams]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_config(REPO / "config")


def test_punctuation_and_spaces_are_never_tokens(tokenizer: Tokenizer) -> None:
    tokens = tokenizer.tokens("溧阳暑托班有多少家？！ ，。、“” ( ) ... --- ")
    assert tokens.words and all(any(c.isalnum() for c in t) for t in tokens.words)
    assert _fields("溧阳暑托班有多少家？", tokenizer) == _fields("溧阳暑托班有多少家", tokenizer)


def test_question_words_are_stopwords(tokenizer: Tokenizer) -> None:
    words = tokenizer.words("请问溧阳暑托班有多少家呢")
    assert "多少" not in words and "请问" not in words and "呢" not in words
    assert "溧阳" in words


def test_traditional_folds_to_simplified(tokenizer: Tokenizer) -> None:
    assert _fields("溧陽暑託班有多少家", tokenizer) == _fields("溧阳暑托班有多少家", tokenizer)
    assert fold("電信網絡詐騙") == "电信网络诈骗"


def test_latin_is_lowercased_and_fullwidth_normalised(tokenizer: Tokenizer) -> None:
    assert tokenizer.words("ＭＨ６０ and WiFi") == tokenizer.words("mh60 AND wifi")


def test_bigrams_bridge_ocr_split_words(tokenizer: Tokenizer) -> None:
    # "防范电信" cut differently than "防 范电信" by jieba still shares its bigrams.
    tokens = tokenizer.tokens("防范电信网络诈骗")
    assert {"防范", "范电", "电信"} <= bigram_strings(tokens.bigram_text)
    assert list(tokens.bigrams) == list(bigram_keys("防范电信网络诈骗"))
    # Stopwords are blanked before pairing: no bigram spans "多少".
    assert "多少" not in bigram_strings(tokenizer.tokens("有多少家").bigram_text)


def test_user_words_stay_whole(tokenizer: Tokenizer) -> None:
    assert "暑托班" in tokenizer.words("像这样的爱心暑托班")
    plain = Tokenizer()
    assert "暑托班" not in plain.words("像这样的爱心暑托班")


def test_userdict_parsing(tmp_path: Path) -> None:
    path = tmp_path / "userdict.txt"
    path.write_text("# comment\n暑托班\n新詞 20 n\n\n", encoding="utf-8")
    assert read_userdict(path) == [UserWord("暑托班", None, None), UserWord("新词", 20, "n")]


def _paragraphs(texts: list[str]) -> list[str]:
    return [p for text in texts for p in text.splitlines() if p.strip()]


def _assert_equal_to_jieba(tokenizer: Tokenizer, paragraphs: list[str]) -> None:
    """Same bag of words (all BM25 sees) everywhere; same order but for exact DAG ties."""
    fast = [tokenizer.words(p) for p in paragraphs]
    slow = [tokenizer.reference_words(p) for p in paragraphs]
    pairs = list(zip(fast, slow, strict=True))
    assert [i for i, (a, b) in enumerate(pairs) if Counter(a) != Counter(b)] == []
    # jieba and jieba-rs break exact ties ("日日日" → 日|日日 or 日日|日) differently.
    assert sum(a != b for a, b in pairs) <= len(paragraphs) // 500


def test_fast_tokens_equal_jieba_on_seeds_and_cmrc(tokenizer: Tokenizer) -> None:
    texts = [p.read_text("utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    cmrc = SHARED / "eval" / "cmrc2018_dev" / "archive"
    texts += [p.read_text("utf-8") for p in sorted(cmrc.glob("*.txt"))]
    paragraphs = _paragraphs(texts)
    assert len(paragraphs) > 1500
    _assert_equal_to_jieba(tokenizer, paragraphs)


def test_fast_tokens_equal_jieba_on_news_sample(tokenizer: Tokenizer) -> None:
    corpus = SHARED / "bench" / "news-corpus.tar.gz"
    texts = []
    with tarfile.open(corpus) as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".txt"):
                texts.append(archive.extractfile(member).read().decode("utf-8"))  # type: ignore[union-attr]
            if len(texts) == 60:
                break
    paragraphs = _paragraphs(texts)
    assert len(paragraphs) > 1000
    _assert_equal_to_jieba(tokenizer, paragraphs)


# Stopwords, words, traditional characters, Latin, digits, spaces, punctuation, NUL, "…".
_PIECES = [*"的了是在什么吗我們学习中文化繁體体ABab12 \n\x00…，。", "多少", "哪里", "中国", "萬"]


def _assert_batch_equals_one_by_one(tokenizer: Tokenizer, texts: list[str]) -> None:
    batch = tokenizer.batch_tokens(texts)
    assert len(batch.word_lengths) == len(batch.bigram_lengths) == len(texts)
    if not texts:
        assert len(batch.word_ids) == len(batch.bigrams) == len(batch.words) == 0
        return
    word_ends = np.cumsum(batch.word_lengths)
    key_ends = np.cumsum(batch.bigram_lengths)
    assert word_ends[-1] == len(batch.word_ids) and key_ends[-1] == len(batch.bigrams)
    for n, text in enumerate(texts):
        one = tokenizer.tokens(text)
        ids = batch.word_ids[word_ends[n] - batch.word_lengths[n] : word_ends[n]]
        assert [batch.words[i] for i in ids] == one.words, text
        assert (batch.word_texts[word_ends[n] - len(ids) : word_ends[n]] == n).all()
        keys = batch.bigrams[key_ends[n] - batch.bigram_lengths[n] : key_ends[n]]
        assert keys.tolist() == one.bigrams.tolist(), text
    # The vocabulary reads in the order its words first occur.
    firsts = [int(i) for i in dict.fromkeys(batch.word_ids.tolist())]
    assert firsts == list(range(len(batch.words)))


def test_batch_tokens_equal_tokens_on_seeds_and_cmrc(tokenizer: Tokenizer) -> None:
    texts = [p.read_text("utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    cmrc = SHARED / "eval" / "cmrc2018_dev" / "archive"
    texts += [p.read_text("utf-8") for p in sorted(cmrc.glob("*.txt"))[:200]]
    paragraphs = _paragraphs(texts)
    _assert_batch_equals_one_by_one(tokenizer, paragraphs)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), max_size=6))
def test_batch_tokens_equal_tokens_on_any_texts(tokenizer: Tokenizer, texts: list[str]) -> None:
    _assert_batch_equals_one_by_one(tokenizer, texts)


def test_common_simplified_is_what_gb2312_encodes_in_its_first_level() -> None:
    """The characters never folded, decoded row by row, are those whose GB2312 code has a first
    byte of 0xB0-0xD7."""

    def first_level(char: str) -> bool:
        try:
            code = char.encode("gb2312")
        except UnicodeEncodeError:
            return False
        return len(code) == 2 and 0xB0 <= code[0] <= 0xD7

    assert _common_simplified() == set(filter(first_level, map(chr, range(0x10000))))
    assert len(_common_simplified()) == 3755 and "么" in _common_simplified()


_FOLD_ALPHABET = ["臺", "灣", "著", "么", "溧", "阳", "Ａ", "B", "…", " ", "，", "\ud800", "𠀀"]


@given(st.text(st.sampled_from(_FOLD_ALPHABET), max_size=300))
def test_fold_translates_exactly_when_a_character_folds(text: str) -> None:
    """Short text with nothing to fold is told by a set, anything else goes through the code
    point table: both fold as the whole table would, at any length."""
    expected = nfkc(text).replace("…", "...").translate(_t2s_table()).lower()
    assert fold(text) == expected
