"""Pipeline step "BM25 index → ranked passages": the `Searcher` that front ends call.

A question is tokenized like the passages, expanded with synonyms, and scored on two fields:
jieba words and character bigrams. Each field's scores are divided by the query's best score
in that field and the two are summed with a weight, so a passage that matches the words well
and the characters well wins, and OCR-split or unknown words still count through the bigrams.
Near-duplicate passages (the same text repeated on a page) are shown once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.answer import best_answer, snippet_span, wanted
from retrieval.index import top_k as best_first
from retrieval.models import Hit, Result
from retrieval.store import Index
from retrieval.tokenize import Tokenizer, Tokens, fold, read_wordlist

MAX_QUESTION_CHARS = 1000  # longer questions are searched by their beginning
BIGRAM_WEIGHT = 0.5
FIELD_DEPTH = 100  # passages each field contributes to the fused ranking


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What the bot says it knows: archive name and sizes."""

    archive: str
    files: int
    articles: int
    passages: int


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
        folded = fold(text)
        return [
            other
            for group in self._groups
            if any(term in folded for term in group)
            for other in group
            if other not in folded
        ]


class Searcher:
    """Ranks an index's passages for questions and picks the answer sentence."""

    def __init__(
        self,
        index: Index,
        tokenizer: Tokenizer,
        *,
        synonyms: Synonyms | None = None,
        bigram_weight: float = BIGRAM_WEIGHT,
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.synonyms = synonyms or Synonyms()
        self.bigram_weight = bigram_weight

    @property
    def info(self) -> IndexInfo:
        """Archive name and sizes, from the index description."""
        meta = self.index.meta
        return IndexInfo(
            archive=Path(str(meta.get("archive", ""))).name,
            files=int(meta.get("files", 0)),  # type: ignore[call-overload]
            articles=int(meta.get("articles", 0)),  # type: ignore[call-overload]
            passages=int(meta.get("passages", 0)),  # type: ignore[call-overload]
        )

    def query_tokens(self, question: str) -> Tokens:
        """Tokens of a question plus its synonyms' tokens."""
        text = question[:MAX_QUESTION_CHARS]
        expanded = " ".join([text, *self.synonyms.expand(text)])
        return self.tokenizer.tokens(expanded)

    def search(self, question: str, *, top_k: int = 3, offset: int = 0) -> list[Hit]:
        """The best `top_k` passages after the first `offset`, near-duplicates collapsed."""
        tokens = self.query_tokens(question)
        candidates, scores = self._fused_scores(tokens, offset + top_k)
        wanted = offset + top_k
        order = best_first(scores, wanted * 2 + 8)
        hits: list[Hit] = []
        seen: set[str] = set()
        for i in order:
            passage = self.index.passages[int(candidates[i])]
            key = re.sub(r"\W+", "", fold(passage.text))
            if key in seen:
                continue
            seen.add(key)
            hits.append(Hit(len(hits) + 1, float(scores[i]), passage))
            if len(hits) == wanted:
                break
        return hits[offset:]

    def ask(self, question: str, *, top_k: int = 3, offset: int = 0) -> Result:
        """Hits with their snippets and, for the first page, the answer sentence."""
        hits = self.search(question, top_k=top_k, offset=offset)
        answer = best_answer(question, hits, self.tokenizer) if hits and offset == 0 else None
        tokens, want = self.query_tokens(question), wanted(question)
        shown = [replace(h, snippet=snippet_span(h.passage.text, tokens, want)) for h in hits]
        return Result(question=question, answer=answer, hits=tuple(shown))

    def _fused_scores(self, tokens: Tokens, wanted: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate passage ids and their fused scores.

        Each field contributes its best `FIELD_DEPTH` (or more) passages; the union is then
        scored exactly in both fields, each field divided by its best score.
        """
        depth = max(FIELD_DEPTH, 4 * wanted)
        fields: list[tuple[str, float, list[str] | np.ndarray]] = [
            ("words", 1.0, tokens.words),
            ("bigrams", self.bigram_weight, tokens.bigrams),
        ]
        found = [
            (self.index.fields[name], weight, query, *self.index.fields[name].top(query, depth))
            for name, weight, query in fields
            if weight > 0
        ]
        found = [item for item in found if len(item[3]) and item[4][0] > 0]
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        candidates = np.unique(np.concatenate([item[3] for item in found]))
        fused = np.zeros(len(candidates))
        for field, weight, query, _, best in found:
            fused += field.scores_for(query, candidates) * (weight / best[0])
        return candidates, fused
