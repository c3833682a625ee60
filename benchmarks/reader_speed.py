"""What the reader costs per question: `python benchmarks/reader_speed.py [--runs 2]`.

Opens one private index of CMRC 2018 dev (built in /tmp on first use) and asks every question
through two `Searcher`s over it in the same process, one with the shipped reader and one
without (BM25's order and the hand-set answer sentence), alternating question by question so
that the shared machine's load falls on both alike. Prints p50 and p95 per question (ms) of
each and their ratio, and appends them, with the commit, to benchmarks/reader_speed.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from retrieval import reader as rd
from retrieval import train_reader as tr
from retrieval.errors import IndexMissingError
from retrieval.evaluate import load_questions
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import Index, open_index
from retrieval.tokenize import Tokenizer

HERE = Path(__file__).resolve().parent
EVAL = HERE.parent.parent / "shared" / "eval" / "cmrc2018_dev"
RESULTS = HERE / "reader_speed.jsonl"


def opened(folder: Path, archive: Path, tokenizer: Tokenizer) -> Index:
    """The private index of CMRC 2018 dev, built on first use."""
    try:
        return open_index(folder)
    except IndexMissingError:
        build_index(archive, folder, tokenizer)
        return open_index(folder)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie (ms, rounded)."""
    ordered = sorted(values)
    return round(ordered[min(int(share * len(ordered)), len(ordered) - 1)] * 1000, 2)


def commit() -> str:
    """The tree's commit ("+" when it has changes), so that each record says what it measured."""
    run = subprocess.run(
        ["git", "describe", "--always", "--dirty=+"], cwd=HERE, capture_output=True, text=True
    )
    return run.stdout.strip() or "unknown"


def main() -> None:
    """Time both searchers over the same questions and record p50/p95 of each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=Path, default=Path("/tmp/reader-speed-index"))
    parser.add_argument("--runs", type=int, default=2, help="passes over the questions")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_config(tr.config_dir())
    index = opened(args.index, EVAL / "archive", tokenizer)
    synonyms = Synonyms.from_file(tr.config_dir() / "synonyms.txt")
    reader = rd.Reader(rd.Weights.load(), tokenizer)
    searchers = {
        "without": Searcher(index, tokenizer, synonyms=synonyms),
        "with": Searcher(index, tokenizer, synonyms=synonyms, reader=reader),
    }
    questions = [q.question for q in load_questions(EVAL / "questions.jsonl")]
    times: dict[str, list[float]] = {name: [] for name in searchers}
    for searcher in searchers.values():  # warm-up: caches and lazy imports
        searcher.ask(questions[0], top_k=5)
    for _ in range(args.runs):
        for question in questions:
            for name, searcher in searchers.items():
                started = time.perf_counter()
                searcher.ask(question, top_k=5)
                times[name].append(time.perf_counter() - started)
    p50 = {name: statistics.median(t) * 1000 for name, t in times.items()}
    record = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": commit(),
        "questions": len(questions),
        "runs": args.runs,
        **{f"{name}_p50_ms": round(p50[name], 2) for name in searchers},
        **{f"{name}_p95_ms": percentile(t, 0.95) for name, t in times.items()},
        "ratio_p50": round(p50["with"] / p50["without"], 2),
    }
    print(json.dumps(record))
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
