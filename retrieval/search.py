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

from retrieval.answer import best_answer, highlights, snippet_span, wanted
from retrieval.index import top_k as best_first
from retrieval.models import Answer, Hit, Result
from retrieval.reader import CANDIDATES, Candidate, Reader
from retrieval.store import Index
from retrieval.tokenize import Tokenizer, Tokens, fold, read_wordlist

MAX_QUESTION_CHARS = 1000  # longer questions are searched by their beginning
BIGRAM_WEIGHT = 0.5
FIELD_DEPTH = 100  # passages each field contributes to the fused ranking
FIELDS = ("words", "bigrams")


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
        reader: Reader | None = None,
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.synonyms = synonyms or Synonyms()
        self.bigram_weight = bigram_weight
        self.reader = reader

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

    def word_idf(self, words: Sequence[str]) -> list[float]:
        """Each word's idf in the words field (the highest idf for a word it does not know)."""
        field = self.index.fields["words"]
        top = float(field.idf.max()) if len(field.idf) else 1.0
        return [float(field.idf[ids[0]]) if (ids := field.term_ids([w])) else top for w in words]

    def search(self, question: str, *, top_k: int = 3, offset: int = 0) -> list[Hit]:
        """The best `top_k` passages after the first `offset`, near-duplicates collapsed."""
        found = self.candidates(question, depth=offset + top_k)
        return [Hit(c.rank, c.fused, c.passage) for c in found[offset:]]

    def candidates(
        self, question: str, *, depth: int, tokens: Tokens | None = None
    ) -> list[Candidate]:
        """The best `depth` passages in BM25's fused order, each with its per-field scores."""
        tokens = self.query_tokens(question) if tokens is None else tokens
        ids, fields = self._field_scores(tokens, depth)
        fused = sum(
            (self._weight(name) * scores for name, scores in fields.items()), np.zeros(len(ids))
        )
        order = best_first(fused, depth * 2 + 8)
        found: list[Candidate] = []
        seen: set[str] = set()
        for i in order:
            passage = self.index.passages[int(ids[i])]
            folded = fold(passage.text)
            key = re.sub(r"\W+", "", folded)
            if key in seen:
                continue
            seen.add(key)
            words, bigrams = (float(fields[n][i]) if n in fields else 0.0 for n in FIELDS)
            found.append(
                Candidate(passage, len(found) + 1, words, bigrams, float(fused[i]), folded)
            )
            if len(found) == depth:
                break
        return found

    def ask(self, question: str, *, top_k: int = 3, offset: int = 0) -> Result:
        """Hits with their snippets and, for the first page, the answer sentence."""
        tokens, want = self.query_tokens(question), wanted(question)
        if self.reader is not None:
            hits, answer = self._read(self.reader, question, tokens, top_k=top_k, offset=offset)
        else:
            hits = self.search(question, top_k=top_k, offset=offset)
            answer = best_answer(question, hits, self.tokenizer) if hits and offset == 0 else None
        shown = [replace(h, snippet=snippet_span(h.passage.text, tokens, want)) for h in hits]
        return Result(question=question, answer=answer, hits=tuple(shown))

    def _read(
        self, reader: Reader, question: str, tokens: Tokens, *, top_k: int, offset: int
    ) -> tuple[list[Hit], Answer | None]:
        """Hits reordered by the learned reader, and its answer (first page only).

        A hit's score is then the reader's probability that the passage is the right one.
        Every page reranks the same `CANDIDATES` passages, so that paging neither repeats nor
        skips one; passages beyond them follow in BM25's order.
        """
        found = self.candidates(question, depth=max(CANDIDATES, offset + top_k), tokens=tokens)
        words = tokens.words
        head = found[:CANDIDATES]
        reading = reader.read(question, words, self.word_idf(words), head)
        chances = reading.chances or (0.0,) * len(head)
        ordered = [(head[i], chances[i]) for i in reading.order]
        ordered += [(c, 0.0) for c in found[CANDIDATES:]]
        page = ordered[offset : offset + top_k]
        hits = [Hit(rank, chance, c.passage) for rank, (c, chance) in enumerate(page, offset + 1)]
        answer = reading.answer if offset == 0 else None
        if answer is not None:
            answer = replace(answer, highlights=highlights(answer.sentence))
        return hits, answer

    def _weight(self, field: str) -> float:
        return self.bigram_weight if field == "bigrams" else 1.0

    def _field_scores(
        self, tokens: Tokens, wanted: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Candidate passage ids and each field's scores of them, divided by its best score.

        Each field contributes its best `FIELD_DEPTH` (or more) passages; the union is then
        scored exactly in both fields. The fused score is the weighted sum of the fields.
        """
        depth = max(FIELD_DEPTH, 4 * wanted)
        queries: dict[str, list[str] | np.ndarray] = {
            "words": tokens.words,
            "bigrams": tokens.bigrams,
        }
        found = [
            (name, self.index.fields[name], query, *self.index.fields[name].top(query, depth))
            for name, query in queries.items()
            if self._weight(name) > 0
        ]
        found = [item for item in found if len(item[3]) and item[4][0] > 0]
        if not found:
            return np.zeros(0, dtype=np.int64), {}
        candidates = np.unique(np.concatenate([item[3] for item in found]))
        scores = {
            name: field.scores_for(query, candidates) / best[0]
            for name, field, query, _, best in found
        }
        return candidates, scores
