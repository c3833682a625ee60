"""Pipeline step "BM25 index → ranked passages": the `Searcher` that front ends call.

A question is worked out once into a `Query` (folded, expanded with synonyms, tokenized like the
passages) and scored on two fields: jieba words and character bigrams. Each field reads the
query's postings once (`Field.gather` → `Postings`) for both its own best passages and the
exact scores of the fused candidates. Each field's scores are divided by the query's best score
in that field and the two are summed with a weight, so a passage that matches the words well
and the characters well wins, and OCR-split or unknown words still count through the bigrams.
Near-duplicate passages (the same text repeated on a page) are shown once. A running front end
switches a `Searcher` to an updated index with `switch` (`bot.refresh`); each search reads the
index reference once, so it finishes on the state it started with.
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
        index = self.index  # read once: a switch meanwhile leaves this search on its state
        wanted = offset + top_k
        candidates, scores = self._fused_scores(index, query, wanted)
        order = best_first(scores, wanted * 2 + 8)
        hits: list[Hit] = []
        seen: set[str] = set()
        for i in order:
            passage = index.passages[int(candidates[i])]
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

    def switch(self, index: Index) -> None:
        """Answer from `index` from the next search on (one reference swapped, atomically)."""
        self.index = index

    def _fused_scores(
        self, index: Index, query: Query, wanted: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate passage ids and their fused scores.

        Each field contributes its best `FIELD_DEPTH` (or more) passages; the union is then
        scored exactly in both fields, each field divided by its best score. A field reads the
        query's postings once for both steps.
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
            field = index.fields[name]
            postings = field.gather(tokens)
            ids, scores = field.top(postings, depth)
            if len(ids) and scores[0] > 0:
                found.append((field, weight, postings, ids, scores[0]))
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        candidates = np.unique(np.concatenate([item[3] for item in found]))
        fused = np.zeros(len(candidates))
        for field, weight, postings, _, best in found:
            fused += field.scores_for(postings, candidates) * (weight / best)
        return candidates, fused
