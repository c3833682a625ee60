"""Pipeline step "question → query": a question worked out once, for search, answer and snippet.

`Query.of` folds the question (NFKC, traditional → simplified, lowercase) once, adds the other
members of every synonym group it mentions, tokenizes it once into jieba words and
character-bigram keys (for the index) and bigram strings (for the snippet), and reads what the
question asks for (a count, a year, a share: `answer.Wanted`). The frozen `Query` is then
passed to `Searcher.search`, `answer.best_answer` and `answer.snippet_span`, so all three see
the synonyms the search used. The answer sees them as `wordings`: the question as asked, and
as it reads with a synonym in place of the term it holds (暑托班 → 暑期托管班), each scored
alone, so that synonyms lift a sentence that uses them but never dilute one that uses the
question's own words. For 溧阳暑托班有多少家:

    words     溧阳 暑托班 家 暑期 托管班 暑期 托管    (the synonyms' words follow the question's)
    wordings  溧阳 暑托班 家 | 溧阳 暑期 托管班 家 | 溧阳 暑期 托管 家
    wanted    a number followed by 家
    dates     None (2023年8月的暑托班 would give DateAsk(year=2023, month=8): `dates.asked_dates`)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.answer import Wanted, asks_for
from retrieval.dates import DateAsk, asked_dates
from retrieval.tokenize import Tokenizer, bigram_strings, fold, read_wordlist

MAX_QUESTION_CHARS = 1000  # longer questions are searched by their beginning


class Synonyms:
    """Groups of interchangeable terms (`config/synonyms.txt`: one group a line)."""

    def __init__(self, groups: Iterable[Sequence[str]] = ()) -> None:
        self._groups = [tuple(fold(term) for term in group) for group in groups if len(group) > 1]

    @classmethod
    def from_file(cls, path: Path) -> Synonyms:
        """Read groups separated by whitespace, commas or ⇄."""
        if not path.is_file():
            return cls()
        return cls(re.split(r"[\s,，⇄=]+", line.strip()) for line in read_wordlist(path))

    def expand(self, text: str) -> list[str]:
        """The other members of every group one of whose members occurs in the text."""
        return self.expand_folded(fold(text))

    def expand_folded(self, folded: str) -> list[str]:
        """`expand` of text that `fold` has already folded."""
        return [
            other
            for group in self._groups
            if any(term in folded for term in group)
            for other in group
            if other not in folded
        ]

    def rewordings(self, folded: str) -> list[str]:
        """The folded text with one group member it holds replaced by another, every way."""
        return [
            folded.replace(term, other)
            for group in self._groups
            for term in group
            if term in folded
            for other in group
            if other not in folded
        ]


@dataclass(frozen=True, slots=True)
class Wording:
    """One way of putting the question: its word tokens and bigram strings (answer scoring)."""

    words: tuple[str, ...]
    grams: frozenset[str]


@dataclass(frozen=True, slots=True, eq=False)
class Query:
    """One question, tokenized once: what search, answer and snippet all read."""

    text: str  # as asked
    folded: str  # fold() of the searched part (the first MAX_QUESTION_CHARS characters)
    synonyms: tuple[str, ...]  # folded terms added from synonym groups
    words: tuple[str, ...]  # word tokens of the question and its synonyms: what is searched
    bigrams: np.ndarray  # uint32 bigram keys of the same (`tokenize.bigram_keys`)
    grams: frozenset[str]  # the same bigrams as strings, for the snippet
    wordings: tuple[Wording, ...]  # as asked, then with a synonym in place of a term (answer)
    wanted: Wanted | None  # what an answer must hold, if the question says
    dates: DateAsk | None = None  # the year, month or day the question names (ranking prefers)

    @classmethod
    def of(cls, question: str, tokenizer: Tokenizer, synonyms: Synonyms | None = None) -> Query:
        """Work a question out once."""
        folded = fold(question[:MAX_QUESTION_CHARS])
        asked = tokenizer.folded_tokens(folded)
        wordings = [Wording(tuple(asked.words), frozenset(bigram_strings(asked.bigram_text)))]
        extra = tuple(synonyms.expand_folded(folded)) if synonyms else ()
        words, bigrams, grams = wordings[0].words, asked.bigrams, wordings[0].grams
        if synonyms and extra:
            # Segmenting stops at a space, so the synonyms' tokens (folded already) simply
            # follow the question's: the same as tokenizing "question synonym …" at once.
            more = tokenizer.folded_tokens(" " + " ".join(extra))
            words = words + tuple(more.words)
            bigrams = np.concatenate([bigrams, more.bigrams])
            grams = grams | bigram_strings(more.bigram_text)
            for text in synonyms.rewordings(folded):
                tokens = tokenizer.folded_tokens(text)
                grams_of = frozenset(bigram_strings(tokens.bigram_text))
                wordings.append(Wording(tuple(tokens.words), grams_of))
        return cls(
            text=question,
            folded=folded,
            synonyms=extra,
            words=words,
            bigrams=bigrams,
            grams=frozenset(grams),
            wordings=tuple(wordings),
            wanted=asks_for(folded),
            dates=asked_dates(folded),
        )

    @property
    def searchable(self) -> bool:
        """Whether the question has any word the index would search for (not only stopwords)."""
        return bool(self.words)
