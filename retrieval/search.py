"""Pipeline step "BM25 index → ranked passages": the `Searcher` that front ends call.

A question is worked out once into a `Query` (folded, expanded with synonyms, tokenized like the
passages) and scored on two fields: jieba words and character bigrams. Each field reads the
query's postings once (`Field.gather` → `Postings`) for both its own best passages and the
exact scores of the fused candidates. Each field's scores are divided by the query's best score
in that field and the two are summed with a weight, so a passage that matches the words well
and the characters well wins, and OCR-split or unknown words still count through the bigrams.
Near-duplicate passages (the same text repeated on a page) are shown once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.answer import best_answer, snippet_span
from retrieval.index import top_k as best_first
from retrieval.models import Hit, Result
from retrieval.query import MAX_QUESTION_CHARS, Query, Synonyms
from retrieval.store import Index
from retrieval.tokenize import Tokenizer, fold

__all__ = ["MAX_QUESTION_CHARS", "IndexInfo", "Query", "Searcher", "Synonyms"]

BIGRAM_WEIGHT = 0.5
FIELD_DEPTH = 100  # passages each field contributes to the fused ranking


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What the bot says it knows: archive name and sizes."""

    archive: str
    files: int
    articles: int
    passages: int


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
        """Archive name and sizes, from the index manifest."""
        manifest = self.index.manifest
        return IndexInfo(
            archive=Path(manifest.archive).name,
            files=manifest.files,
            articles=manifest.articles,
            passages=manifest.passages,
        )

    def query(self, question: str) -> Query:
        """The question worked out once: folded, with synonyms, tokenized."""
        return Query.of(question, self.tokenizer, self.synonyms)

    def search(self, question: str | Query, *, top_k: int = 3, offset: int = 0) -> list[Hit]:
        """The best `top_k` passages after the first `offset`, near-duplicates collapsed."""
        query = question if isinstance(question, Query) else self.query(question)
        wanted = offset + top_k
        candidates, scores = self._fused_scores(query, wanted)
        order = best_first(scores, _shown_from(wanted))
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

    def ask(self, question: str | Query, *, top_k: int = 3, offset: int = 0) -> Result:
        """Hits with their snippets and, for the first page, the answer sentence."""
        query = question if isinstance(question, Query) else self.query(question)
        hits = self.search(query, top_k=top_k, offset=offset)
        answer = best_answer(query, hits) if hits and offset == 0 else None
        shown = [replace(h, snippet=snippet_span(h.passage.text, query)) for h in hits]
        return Result(query.text, answer, tuple(shown), searchable=query.searchable)

    def _fused_scores(self, query: Query, wanted: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate passage ids and their fused scores.

        Each field contributes its best `FIELD_DEPTH` (or more) passages; the union is then
        scored exactly in both fields, each field divided by its best score — except the
        candidates whose fused score cannot reach the `_shown_from(wanted)` best (see
        `_reachable`), which are left out. A field reads the query's postings once.
        """
        depth = max(FIELD_DEPTH, 4 * wanted)
        terms: list[tuple[str, float, tuple[str, ...] | np.ndarray]] = [
            ("words", 1.0, query.words),
            ("bigrams", self.bigram_weight, query.bigrams),
        ]
        found = []
        for name, weight, tokens in terms:
            if weight <= 0:
                continue
            field = self.index.fields[name]
            postings = field.gather(tokens)
            ids, scores = field.top(postings, depth)
            if len(ids) and scores[0] > 0:
                found.append((field, weight / scores[0], postings, ids, scores))
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        candidates = np.unique(np.concatenate([item[3] for item in found]))
        known = [_known(candidates, ids, scores, depth) for _, _, _, ids, scores in found]
        if all(field.nonnegative(postings) for field, _, postings, _, _ in found):
            keep = _reachable(known, [scale for _, scale, _, _, _ in found], _shown_from(wanted))
            candidates, known = candidates[keep], [(s[keep], m[keep], c) for s, m, c in known]
        fused = np.zeros(len(candidates))
        for (field, scale, postings, _, _), (exact, is_known, _) in zip(found, known, strict=True):
            scores = exact.copy()
            if not is_known.all():  # `top` scores equal `scores_for`'s bit for bit
                scores[~is_known] = field.scores_for(postings, candidates[~is_known])
            fused += scores * scale
        return candidates, fused


def _shown_from(wanted: int) -> int:
    """How many of the best fused passages the near-duplicate filter looks through."""
    return wanted * 2 + 8


Known = tuple[np.ndarray, np.ndarray, float]  # scores, which are exact, bound of the others


def _known(candidates: np.ndarray, ids: np.ndarray, scores: np.ndarray, depth: int) -> Known:
    """A field's exact scores of the candidates in its own top, and a bound for the rest.

    A passage outside a field's top `depth` scores at most the last score there; if the field
    returned fewer, every passage its terms occur in was returned and the rest score 0.
    """
    order = np.argsort(ids, kind="stable")
    where = np.searchsorted(ids[order], candidates).clip(max=len(ids) - 1)
    is_known = ids[order][where] == candidates
    exact = np.where(is_known, scores[order][where], 0.0)
    return exact, is_known, float(scores[-1]) if len(ids) >= depth else 0.0


def _reachable(known: list[Known], scales: list[float], shown: int) -> np.ndarray:
    """Which candidates can still be among the `shown` best fused scores.

    With non-negative field scores, a candidate's fused score lies between its known part
    (unknown scores as 0) and its known part plus the bounds of the unknown ones. Whatever
    lies below the `shown`-th highest low end cannot be shown (a hair of margin for rounding).
    """
    low, high = np.zeros(len(known[0][0])), np.zeros(len(known[0][0]))
    for (exact, is_known, bound), scale in zip(known, scales, strict=True):
        low += exact * scale
        high += np.where(is_known, exact, bound) * scale
    if len(low) <= shown:
        return np.ones(len(low), dtype=bool)
    floor = np.partition(low, len(low) - shown)[len(low) - shown]
    return high * (1 + 1e-9) + 1e-12 >= floor
