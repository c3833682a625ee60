"""Short passage ids (round trip, charset, length, stability) and article pages for Telegram."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.errors import RetrievalError
from retrieval.ids import (
    ID_CHARS,
    MAX_NUMBER,
    MalformedIdError,
    PassageKey,
    article_pages,
    file_key,
    parse_short_id,
    short_id,
    utf16_len,
)

FILE = "魅力鄄城/2023/0816_第3版.txt"
DEEP_LINK = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Telegram's /start payload
numbers = st.integers(0, MAX_NUMBER)


def test_short_id_is_fixed_and_fits_telegram() -> None:
    passage_id = short_id(FILE, 2, 0)
    assert passage_id == "jCVYzeUnAAACAAAA"  # the module docstring's example: a format change
    assert len(passage_id) == ID_CHARS == 16
    assert DEEP_LINK.fullmatch(passage_id)
    assert len(f"full:{passage_id}:999".encode()) <= 64  # callback data
    assert parse_short_id(passage_id) == PassageKey(file_key(FILE), 2, 0)


def test_short_id_is_the_same_in_another_process() -> None:
    code = f"from retrieval.ids import short_id; print(short_id({FILE!r}, 7, 3))"
    env = {"PYTHONHASHSEED": "12345"}  # Python's hash() would change; blake2b does not
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == short_id(FILE, 7, 3)


def test_file_key_ignores_unicode_normalisation_form() -> None:
    name = "café/é.txt"
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != name
    assert file_key(nfd) == file_key(name)
    assert file_key("a.txt") != file_key("b.txt")
    assert 0 <= file_key(FILE) < 2**48


def test_short_id_differs_by_article_and_number() -> None:
    ids = {short_id(FILE, a, n) for a in range(5) for n in range(5)}
    assert len(ids) == 25


@pytest.mark.parametrize(("article", "number"), [(-1, 0), (0, -1), (MAX_NUMBER + 1, 0)])
def test_short_id_refuses_numbers_out_of_range(article: int, number: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        short_id(FILE, article, number)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        short_id(FILE, 1, 1)[:-1],  # cut
        short_id(FILE, 1, 1) + "A",  # too long
        "jCVYzeUnAAACAA=A",  # padding / outside the alphabet
        "jCVYzeUnAAACAAA+",
        "魅力鄄城魅力鄄城魅力鄄城魅力鄄城",
        f"{FILE}#2.0",  # the old long form
    ],
)
def test_malformed_ids_raise_a_retrieval_value_error(bad: str) -> None:
    with pytest.raises(MalformedIdError) as caught:
        parse_short_id(bad)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RetrievalError)


@given(st.text(min_size=1, max_size=200), numbers, numbers)
def test_ids_round_trip_in_the_deep_link_alphabet(file: str, article: int, number: int) -> None:
    passage_id = short_id(file, article, number)
    assert DEEP_LINK.fullmatch(passage_id)
    assert len(passage_id) == ID_CHARS
    assert parse_short_id(passage_id) == PassageKey(file_key(file), article, number)


@given(st.text(max_size=30))
def test_parse_never_fails_otherwise(text: str) -> None:
    try:
        key = parse_short_id(text)
    except MalformedIdError:
        return
    assert short_id_like(text)
    assert 0 <= key.file_key < 2**48


def short_id_like(text: str) -> bool:
    """Whether a string has a short id's shape."""
    return re.fullmatch(r"[A-Za-z0-9_-]{16}", text) is not None


def test_pages_split_at_paragraphs_first() -> None:
    paragraph = "第一句话。" * 300 + "\n"  # 1,501 units
    text = paragraph * 5
    pages = article_pages(text, limit=4096, reserve=96)
    assert "".join(pages) == text
    assert [p.count("\n") for p in pages] == [2, 2, 1]
    assert all(p.endswith("\n") for p in pages)


def test_pages_split_at_sentences_when_a_paragraph_is_too_long() -> None:
    text = "这是一句很长的话。" * 1000
    pages = article_pages(text, limit=1000, reserve=0)
    assert "".join(pages) == text
    assert all(p.endswith("。") and utf16_len(p) <= 1000 for p in pages)


def test_pages_cut_hard_and_count_utf16_units() -> None:
    text = "𠀀" * 3000  # outside the BMP: two UTF-16 units each
    pages = article_pages(text, limit=4096, reserve=0)
    assert [len(p) for p in pages] == [2048, 952]
    assert "".join(pages) == text


def test_short_text_is_one_page_and_empty_text_none() -> None:
    assert article_pages("一段话。") == ["一段话。"]
    assert article_pages("") == []


def test_pages_need_room_for_a_character() -> None:
    with pytest.raises(ValueError, match="no room"):
        article_pages("文字", limit=100, reserve=99)


@given(
    st.text(alphabet=st.sampled_from("文字𠀀a。!?\n ”"), max_size=3000),
    st.integers(2, 600),
)
def test_pages_rejoin_and_fit(text: str, room: int) -> None:
    pages = article_pages(text, limit=room + 10, reserve=10)
    assert "".join(pages) == text
    assert all(pages)
    assert all(utf16_len(page) <= room for page in pages)
