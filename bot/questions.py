"""Pipeline step "question → searchable text": what every front end does with what people type.

Telegram, the REPL and the CLI all pass raw input through `prepare` first, so they treat bad
questions alike:

- whitespace, zero-width, control and format characters (bidi overrides, BOMs, lone
  surrogates) are dropped and runs of whitespace become one space;
- nothing left: `Problem.EMPTY` (the front end shows how to ask);
- no letter or digit in any script (only punctuation, symbols, emoji): `Problem.NO_WORDS`
  (nothing to search, say so without searching);
- longer than `MAX_CHARS`: searched by its beginning, and the reply says so (`shortened`).

A question made only of words the index ignores (什么, 多少, 的 ...) has letters, so it is
searched; it finds nothing, and `Outcome.searchable` tells the reply to say why.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import Enum

from retrieval.models import Result
from retrieval.query import MAX_QUESTION_CHARS

MAX_CHARS = MAX_QUESTION_CHARS  # a longer question is searched by its first MAX_CHARS characters
# Other (C*) categories except private use: control, format (zero-width, bidi), surrogate,
# unassigned. None of them can be searched for, and format characters can disguise an echo.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Cn"})


class Problem(Enum):
    """Why a question is not searched at all."""

    EMPTY = "empty"  # nothing but whitespace and invisible characters
    NO_WORDS = "no_words"  # no letter or digit: punctuation, symbols or emoji only


@dataclass(frozen=True, slots=True)
class Question:
    """A question ready to search: cleaned text, at most `MAX_CHARS` long."""

    text: str
    shortened: bool = False  # the question was longer and is searched by its beginning
    problem: Problem | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A prepared question and what the search made of it (no hits when it had a problem).

    `searchable` is False when nothing in the question could be searched for: no letter or
    digit, or only words the index ignores.
    """

    question: Question
    result: Result
    searchable: bool = True


def clean(raw: str) -> str:
    """The question without invisible characters, whitespace runs made one space, stripped."""
    kept = (
        " " if char.isspace() else char
        for char in raw
        if char.isspace() or unicodedata.category(char) not in _DROPPED
    )
    return " ".join("".join(kept).split())


def prepare(raw: str) -> Question:
    """Clean a raw question and say whether and how it can be searched."""
    text = clean(raw)
    if not text:
        return Question("", problem=Problem.EMPTY)
    if not any(char.isalnum() for char in text):
        return Question(text, problem=Problem.NO_WORDS)
    if len(text) > MAX_CHARS:
        return Question(text[:MAX_CHARS].rstrip(), shortened=True)
    return Question(text)
