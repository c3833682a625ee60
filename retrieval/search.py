"""Pipeline step "BM25 index → ranked passages": the `Searcher` that front ends call.

A question is worked out once into a `Query` (folded, expanded with synonyms, tokenized like the
passages) and scored on two fields: jieba words and character bigrams. Each field finds the
query's postings once (`Field.gather` → `Postings`, read in place) for both its own best
passages and the exact scores of the fused candidates. Each field's scores are divided by the
query's best score in that field and the two are summed with a weight, so a passage that
matches the words well and the characters well wins, and OCR-split or unknown words still count
through the bigrams.
Near-duplicate passages (the same text repeated on a page) are shown once. A question that
names a year, month or day (`Query.dates`) re-ranks the whole fused candidate pool by page date
(`dates.prefer_dates`) before any page is cut from it, so every page of the answer agrees.
With a learned `Reader` (`retrieval/reader.py`), the best `CANDIDATES` passages are then
re-ordered by their best evidence and the answer sentence and its exact span are the reader's.
A running front end switches a `Searcher` to an updated index with `switch` (`bot.refresh`);
each search reads the index reference once, so it finishes on the state it started with.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from retrieval.answer import best_answer, highlights, snippet_span
from retrieval.dates import DATE_WEIGHT, DateAsk, date_fit, prefer_dates
from retrieval.heap import after_question
from retrieval.index import Field, Postings
from retrieval.index import top_k as best_first
from retrieval.kernels import new_board
from retrieval.models import Answer, Hit, Result
from retrieval.query import MAX_QUESTION_CHARS, Query, Synonyms
from retrieval.reader import CANDIDATES, Candidate, Reader
from retrieval.reading import FullArticle, whole_article
from retrieval.store import Index
from retrieval.tokenize import Tokenizer, fold

__all__ = ["MAX_QUESTION_CHARS", "IndexInfo", "Query", "Searcher", "Synonyms"]

BIGRAM_WEIGHT = 0.5
_NOT_WORD = re.compile(r"\W+")  # left out of a passage's text to tell near-duplicates apart
Shown = tuple[Hit, str | None]  # a hit and its passage's folded text (`Candidate.folded`)
FIELD_DEPTH = 100  # passages each field contributes to the fused ranking
FIELDS = ("words", "bigrams")
# Passages from which a question is ranked on both cores, this thread and its helper each
# taking half of the passages (`_split_tops`); below, handing work over costs more than the
# other core saves (RESULTS.md "Issue 15, sixth pass").
SPLIT_FROM = 200_000


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
        date_weight: float = DATE_WEIGHT,
        reader: Reader | None = None,
    ) -> None:
        self.index = index
        self.tokenizer = tokenizer
        self.synonyms = synonyms or Synonyms()
        self.bigram_weight = bigram_weight
        self.date_weight = date_weight  # 0: page dates never change the ranking
        self.reader = reader  # None: BM25's order and the hand-set answer sentence

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

    def word_idf(self, words: Sequence[str]) -> list[float]:
        """Each word's idf in the words field (the highest idf for a word it does not know)."""
        return self.index.fields["words"].idf_of(words)

    def search(self, question: str | Query, *, top_k: int = 3, offset: int = 0) -> list[Hit]:
        """The best `top_k` passages after the first `offset`, near-duplicates collapsed."""
        hits = self._hits(question, top_k=top_k, offset=offset)
        after_question()
        return hits

    def _hits(self, question: str | Query, *, top_k: int, offset: int) -> list[Hit]:
        """`search` without counting the question for the heap's release (`ask` does, once)."""
        return [hit for hit, _ in self._page(question, top_k=top_k, offset=offset)]

    def _page(self, question: str | Query, *, top_k: int, offset: int) -> list[Shown]:
        """`_hits`, each with its passage's folded text."""
        found = self.candidates(question, depth=offset + top_k)
        return [(Hit(c.rank, c.fused, c.passage), c.folded) for c in found[offset:]]

    def candidates(self, question: str | Query, *, depth: int) -> list[Candidate]:
        """The best `depth` passages in BM25's fused order (dates preferred when asked), each
        with its per-field scores, near-duplicates collapsed."""
        query = question if isinstance(question, Query) else self.query(question)
        return self._candidates(self.index, query, depth)

    def _candidates(self, index: Index, query: Query, depth: int) -> list[Candidate]:
        """`candidates` on one index: read once, a switch meanwhile leaves a search on it."""
        dated = query.dates is not None and self.date_weight > 0
        ids, fields = self._field_scores(index, query, depth, prune=not dated)
        _drop_pages_later([index.fields[name] for name in FIELDS])
        fused = sum(
            (self._weight(name) * scores for name, scores in fields.items()), np.zeros(len(ids))
        )
        if dated and query.dates is not None and len(ids):
            fused = self._by_date(index, query.dates, ids, fused)
        order = best_first(fused, _shown_from(depth))
        found: list[Candidate] = []
        seen: set[str] = set()
        for i in order:
            passage = index.passages[int(ids[i])]
            folded = fold(passage.text)
            key = _NOT_WORD.sub("", folded)
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

    def ask(self, question: str | Query, *, top_k: int = 3, offset: int = 0) -> Result:
        """Hits with their snippets and, for the first page, the answer sentence."""
        query = question if isinstance(question, Query) else self.query(question)
        if self.reader is not None:
            page, answer = self._read(self.reader, query, top_k=top_k, offset=offset)
        else:
            page = self._page(query, top_k=top_k, offset=offset)
            hits = [hit for hit, _ in page]
            answer = best_answer(query, hits) if hits and offset == 0 else None
        shown = [
            replace(h, snippet=snippet_span(h.passage.text, query, folded=folded))
            for h, folded in page
        ]
        after_question()
        return Result(
            query.text, answer, tuple(shown), searchable=query.searchable, terms=query.words
        )

    def article(self, passage_id: str, *, check: str | None = None) -> FullArticle:
        """The whole article holding a passage, by its short id (`reading.whole_article`)."""
        return whole_article(self.index.passages, passage_id, check=check)

    def _read(
        self, reader: Reader, query: Query, *, top_k: int, offset: int
    ) -> tuple[list[Shown], Answer | None]:
        """Hits reordered by the learned reader (each with its passage's folded text), and its
        answer (first page only).

        A hit's score is then the reader's probability that the passage is the right one.
        Every page reranks the same `CANDIDATES` passages, so that paging neither repeats nor
        skips one; passages beyond them follow in BM25's order.
        """
        index = self.index  # one state for the candidates and the idf the reader weighs
        found = self._candidates(index, query, max(CANDIDATES, offset + top_k))
        words = list(query.words)
        head = found[:CANDIDATES]
        reading = reader.read(query.text, words, index.fields["words"].idf_of(words), head)
        chances = reading.chances or (0.0,) * len(head)
        ordered = [(head[i], chances[i]) for i in reading.order]
        ordered += [(c, 0.0) for c in found[CANDIDATES:]]
        page = ordered[offset : offset + top_k]
        hits = [
            (Hit(rank, chance, c.passage), c.folded)
            for rank, (c, chance) in enumerate(page, offset + 1)
        ]
        answer = reading.answer if offset == 0 else None
        if answer is not None:
            answer = replace(answer, highlights=highlights(answer.sentence))
        return hits, answer

    def switch(self, index: Index) -> None:
        """Answer from `index` from the next search on (one reference swapped, atomically)."""
        self.index = index

    def _weight(self, field: str) -> float:
        return self.bigram_weight if field == "bigrams" else 1.0

    def _by_date(
        self, index: Index, ask: DateAsk, candidates: np.ndarray, scores: np.ndarray
    ) -> np.ndarray:
        """The candidates' scores re-ranked by how well their page dates fit the asked time.

        Only when some candidate's page fits: with none of the asked time in the pool there is
        nothing to prefer, and re-ranking would only push down pages of other dates
        (benchmarks/QUALITY.md, "Date preference").
        """
        days = index.passages.dates_of(candidates)
        if not any(date_fit(ask, day) > 0 for day in days):
            return scores
        pool = list(zip(scores.tolist(), days, strict=True))
        return np.array(prefer_dates(pool, ask, weight=self.date_weight))

    def _field_scores(
        self, index: Index, query: Query, wanted: int, *, prune: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Candidate passage ids and each field's scores of them, divided by its best score.

        Each field contributes its best `FIELD_DEPTH` (or more) passages; the union is then
        scored exactly in both fields — except, with `prune`, the candidates whose fused score
        cannot reach the `_shown_from(wanted)` best (see `_reachable`), which are left out. A
        field finds the query's postings once for both steps.
        """
        depth = max(FIELD_DEPTH, 4 * wanted)
        terms: dict[str, tuple[str, ...] | np.ndarray] = {
            "words": query.words,
            "bigrams": query.bigrams,
        }
        names = [name for name in terms if self._weight(name) > 0]
        scored = [(index.fields[name], terms[name]) for name in names]
        tops = [(name, *top) for name, top in zip(names, _field_tops(scored, depth), strict=True)]
        found = [top for top in tops if len(top[3]) and top[4][0] > 0]
        if not found:
            return np.zeros(0, dtype=np.int64), {}
        # Sorted and deduplicated as np.unique would, without the import of numpy.ma that
        # np.unique makes on its first call (6 ms of a fresh `archive-bot ask`).
        merged = np.sort(np.concatenate([item[3] for item in found]))
        candidates = merged[np.insert(merged[1:] != merged[:-1], 0, True)]
        known = [_known(candidates, ids, scores, depth) for _, _, _, ids, scores in found]
        scales = [self._weight(name) / scores[0] for name, _, _, _, scores in found]
        if prune and all(field.nonnegative(postings) for _, field, postings, _, _ in found):
            keep = _reachable(known, scales, _shown_from(wanted))
            candidates, known = candidates[keep], [(s[keep], m[keep], c) for s, m, c in known]
        normalized = {}
        for (name, field, postings, _, scores), (exact, is_known, _) in zip(
            found, known, strict=True
        ):
            exact = exact.copy()
            if not is_known.all():  # `top` scores equal `scores_for`'s bit for bit
                exact[~is_known] = field.scores_for(postings, candidates[~is_known])
            normalized[name] = exact / scores[0]
        return candidates, normalized


Tokens = tuple[str, ...] | np.ndarray
_FieldTop = tuple[Field, Postings, np.ndarray, np.ndarray]  # field, postings, top ids, scores

_HELPER = threading.local()  # one helper thread for each thread that searches


def _field_tops(scored: Sequence[tuple[Field, Tokens]], depth: int) -> list[_FieldTop]:
    """Each field's postings of its tokens and its best `depth` passages (ids, scores)."""
    if scored and scored[0][0].size >= SPLIT_FROM:
        return _split_tops(scored, depth)
    tops = []
    for field, tokens in scored:
        postings = field.gather(tokens)
        tops.append((field, postings, *field.top(postings, depth)))
    return tops


def _split_tops(scored: Sequence[tuple[Field, Tokens]], depth: int) -> list[_FieldTop]:
    """`_field_tops` on both cores: this thread gathers every field's postings, then ranks the
    lower half of the passages in every field while its helper ranks the upper half; each
    field's top is the best of its halves' tops. The two calls ranking a field's halves share a
    board (`kernels.top_k`): each cuts with the k-th best of both halves' best so far, nearer
    the k-th best of all than its own half's.

    Exact, and the same bits: a passage's score is summed in term order whichever half holds
    it, and a passage among the best of all is among the best of its half. Splitting the
    passages rather than the fields keeps both cores busy when one field holds most of a
    question's postings (the slowest questions), and each core's scratch touches half as much
    memory. The kernels hold no GIL, but gathering is Python: had the helper gathered a field
    meanwhile, it would have waited for this thread to let go of the GIL and started ranking
    about 0.2 ms after it (both fields' tops at 1M, p50 0.96x gathered here, RESULTS.md "Issue
    15, eleventh pass"). Each searching thread has a helper of its own.
    """
    pool: ThreadPoolExecutor | None = getattr(_HELPER, "pool", None)
    if pool is None:
        pool = _HELPER.pool = ThreadPoolExecutor(1, thread_name_prefix="field")
    fields = [field for field, _ in scored]
    postings = [field.gather(tokens) for field, tokens in scored]
    boards = [new_board(depth) for _ in fields]

    def upper(i: int) -> tuple[np.ndarray, np.ndarray]:
        size = fields[i].size
        return fields[i].top(postings[i], depth, (size // 2, size), (boards[i], 1))

    uppers = [pool.submit(upper, i) for i in range(len(fields))]
    try:
        lowers = [
            f.top(postings[i], depth, (0, f.size // 2), (boards[i], 0))
            for i, f in enumerate(fields)
        ]
    except BaseException:
        for job in uppers:  # the helper reads this thread's postings: let it finish first
            job.exception()
        raise
    return [
        (field, postings[i], *_best_of(lowers[i], uppers[i].result(), depth))
        for i, field in enumerate(fields)
    ]


def _drop_pages_later(fields: Sequence[Field]) -> None:
    """Have this thread's helper drop the fields' mapped postings pages that are due
    (`Field.drop_pages`): it is idle while this thread fuses the ranking and reads the
    passages. Without a helper (below `SPLIT_FROM` passages) they are dropped here."""
    pool: ThreadPoolExecutor | None = getattr(_HELPER, "pool", None)
    for field in fields:
        if field.pages_due:
            if pool is None:
                field.drop_pages()
            else:
                pool.submit(field.drop_pages)


def _best_of(
    one: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two tops (ids, scores) of different passages, best first, ties by id."""
    ids, scores = np.concatenate([one[0], other[0]]), np.concatenate([one[1], other[1]])
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


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
