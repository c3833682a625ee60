"""Measuring the pipeline: recall@k, MRR, answer-hit rate and the short answer's EM and F1.

A questions file is JSONL, one object a line: `question`, `source` (the archive file holding the
answer) and `must_contain` (strings a passage, or the answer sentence, must hold to count), and
optionally `answers` (every annotated answer) or `answer`, against which the short answer is
scored as CMRC 2018's own evaluation does: punctuation and spaces removed, exact match, and F1
over characters through the longest common substring, the best over the annotated answers (CMRC
keeps English words whole; here every character counts, which differs only for Latin text).
A question without a short answer scores 0 on both.
"""

from __future__ import annotations

import json
import re
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
    answers: tuple[str, ...] = ()


@dataclass(slots=True)
class Report:
    """Figures over a questions file: `missed` ids are not in the top 5, `not_first` not first."""

    total: int = 0
    recall: dict[int, int] = field(default_factory=lambda: dict.fromkeys(KS, 0))
    reciprocal_ranks: float = 0.0
    answer_hits: int = 0
    missed: list[str] = field(default_factory=list)
    not_first: list[str] = field(default_factory=list)
    short_answered: int = 0
    short_exact: float = 0.0
    short_f1: float = 0.0
    scored: int = 0  # questions with annotated answers

    def as_dict(self) -> dict[str, object]:
        """Figures as rates, for JSON output."""
        n = self.total or 1
        return {
            "questions": self.total,
            **{f"recall@{k}": round(self.recall[k] / n, 4) for k in KS},
            "mrr": round(self.reciprocal_ranks / n, 4),
            "answer_hit": round(self.answer_hits / n, 4),
            "short_em": round(self.short_exact / (self.scored or 1), 4),
            "short_f1": round(self.short_f1 / (self.scored or 1), 4),
            "short_answered": round(self.short_answered / n, 4),
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
            answers = item.get("answers") or ([item["answer"]] if item.get("answer") else [])
            questions.append(
                Question(
                    str(item.get("id", number)),
                    item["question"],
                    item["source"],
                    musts,
                    tuple(str(a) for a in answers),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise RetrievalError(f"{path}:{number}: not a question object ({error}).") from error
    return questions


def _holds(text: str, strings: Iterable[str]) -> bool:
    folded = fold(text)
    return all(fold(s) in folded for s in strings)


def _bare(text: str) -> str:
    """Folded text without punctuation and spaces, as CMRC's evaluation compares answers."""
    return re.sub(r"[\W_]+", "", fold(text))


def _longest_common_substring(a: str, b: str) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for char in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, 1):
            if char == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the prediction equals an answer, punctuation and spaces aside."""
    return float(any(_bare(prediction) == _bare(a) for a in answers))


def char_f1(prediction: str, answers: Iterable[str]) -> float:
    """CMRC 2018's F1: precision and recall of the longest common substring, best answer."""
    scores = [0.0]
    guess = _bare(prediction)
    for answer in map(_bare, answers):
        common = _longest_common_substring(guess, answer)
        if common:
            precision, recall = common / len(guess), common / len(answer)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


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
        short = result.answer.short_text if result.answer else None
        report.short_answered += short is not None
        if question.answers:
            report.scored += 1
            if short is not None:
                report.short_exact += exact_match(short, question.answers)
                report.short_f1 += char_f1(short, question.answers)
        if rank is None:
            report.missed.append(question.id)
        elif rank > 1:
            report.not_first.append(question.id)
    return report
