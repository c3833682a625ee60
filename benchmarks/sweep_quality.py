"""Sweep retrieval settings on the seed questions and CMRC 2018 dev; print a Markdown table.

    python benchmarks/sweep_quality.py [--quick]

Each row builds the index of both archives with one setting changed and runs every question,
so the numbers are what `archive-bot eval` would print with that setting.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from retrieval.evaluate import Report, evaluate, load_questions
from retrieval.index import BM25Params
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "eval"
SETS = {
    "seeds": (REPO / "seeds", SHARED / "seed_qa.jsonl"),
    "cmrc": (SHARED / "cmrc2018_dev" / "archive", SHARED / "cmrc2018_dev" / "questions.jsonl"),
}


@dataclass(frozen=True)
class Setting:
    """One point of the sweep."""

    max_chars: int = 1000
    k1: float = 1.5
    b: float = 0.75
    bigram_weight: float = 0.5


def run(setting: Setting, tokenizer: Tokenizer, synonyms: Synonyms) -> dict[str, Report]:
    """Build both indexes with a setting and evaluate every question."""
    reports = {}
    for name, (archive, questions) in SETS.items():
        with tempfile.TemporaryDirectory() as folder:
            params = BM25Params(k1=setting.k1, b=setting.b)
            build_index(
                archive, Path(folder), tokenizer, params=params, max_chars=setting.max_chars
            )
            searcher = Searcher(
                open_index(Path(folder)),
                tokenizer,
                synonyms=synonyms,
                bigram_weight=setting.bigram_weight,
            )
            reports[name] = evaluate(load_questions(questions), partial(searcher.ask, top_k=5))
    return reports


def row(setting: Setting, reports: dict[str, Report]) -> str:
    """One Markdown table row."""
    s, c = reports["seeds"], reports["cmrc"]
    return (
        f"| {setting.max_chars} | {setting.k1} | {setting.b} | {setting.bigram_weight} "
        f"| {s.recall[1]}/{s.total} | {s.recall[3]}/{s.total} | {s.answer_hits}/{s.total} "
        f"| {c.recall[1] / c.total:.3f} | {c.recall[3] / c.total:.3f} "
        f"| {c.answer_hits / c.total:.3f} |"
    )


def main() -> None:
    """Run the sweep and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="passage size only")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_config(REPO / "config")
    synonyms = Synonyms.from_file(REPO / "config" / "synonyms.txt")
    settings = [Setting(max_chars=m) for m in (200, 300, 450, 600, 800, 1000, 1500)]
    if not args.quick:
        grid = itertools.product((0.9, 1.2, 1.5, 2.0), (0.5, 0.75, 0.9))
        settings += [Setting(k1=k1, b=b) for k1, b in grid if (k1, b) != (1.5, 0.75)]
        settings += [Setting(bigram_weight=w) for w in (0.0, 0.25, 1.0)]
    print(
        "| max chars | k1 | b | bigram weight | seeds top-1 | seeds top-3 | seeds answer "
        "| cmrc top-1 | cmrc top-3 | cmrc answer |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for setting in settings:
        started = time.perf_counter()
        print(
            row(setting, run(setting, tokenizer, synonyms)),
            f"<!-- {time.perf_counter() - started:.0f} s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
