"""Measuring the pipeline: recall@k, MRR and answer-hit rate over a questions file.

A questions file is JSONL, one object a line: `question`, `source` (the archive file holding the
answer) and `must_contain` (strings a passage, or the answer sentence, must hold to count).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.errors import RetrievalError
from retrieval.models import Result
from retrieval.tokenize import fold

KS = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class Question:
    """One evaluation question."""

    id: str
    question: str
    source: str
    must_contain: tuple[str, ...]


@dataclass(slots=True)
class Report:
    """Figures over a questions file: `missed` ids are not in the top 5, `not_first` not first."""

    total: int = 0
    recall: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    reciprocal_ranks: float = 0.0
    answer_hits: int = 0
    missed: list[str] = field(default_factory=list)
    not_first: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Figures as rates, for JSON output."""
        n = self.total or 1
        return {
            "questions": self.total,
            **{f"recall@{k}": round(self.recall[k] / n, 4) for k in KS},
            "mrr": round(self.reciprocal_ranks / n, 4),
            "answer_hit": round(self.answer_hits / n, 4),
            **{f"hits@{k}": self.recall[k] for k in KS},
            "answer_hits": self.answer_hits,
            "missed": self.missed,
            "not_first": self.not_first,
        }


def load_questions(path: Path) -> list[Question]:
    """Read a JSONL questions file; a malformed line is an error naming its number."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            must = item["must_contain"]
            musts = tuple([must] if isinstance(must, str) else must)
            questions.append(
                Question(str(item.get("id", number)), item["question"], item["source"], musts)
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RetrievalError(f"{path}:{number}: not a question object ({error}).") from error
    return questions


def _holds(text: str, strings: Iterable[str]) -> bool:
    folded = fold(text)
    return all(fold(s) in folded for s in strings)


def first_hit_rank(question: Question, result: Result) -> int | None:
    """Rank of the first passage from the right file that holds every must_contain string."""
    for hit in result.hits:
        if hit.passage.source.file == question.source and _holds(
            hit.passage.text, question.must_contain
        ):
            return hit.rank
    return None


def evaluate(questions: Iterable[Question], ask: Callable[[str], Result]) -> Report:
    """Ask every question (ask returns at least the top 5 hits) and count the figures."""
    report = Report()
    for question in questions:
        result = ask(question.question)
        rank = first_hit_rank(question, result)
        report.total += 1
        for k in KS:
            report.recall[k] += rank is not None and rank <= k
        report.reciprocal_ranks += 1 / rank if rank else 0.0
        answer = result.answer.sentence if result.answer else ""
        report.answer_hits += _holds(answer, question.must_contain)
        if rank is None:
            report.missed.append(question.id)
        elif rank > 1:
            report.not_first.append(question.id)
    return report
