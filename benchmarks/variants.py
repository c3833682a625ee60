"""BM25 variants (Okapi, L, Plus; rank-bm25's implementations) on the same passages and tokens.

    python benchmarks/variants.py

For each evaluation set: the shipped index is built, its passages are read back and tokenized
as the words field indexes them (`index_text`), and each variant ranks them for every question
(the question's word tokens, synonyms included). Word field alone, no bigrams, no
near-duplicate collapsing: the point is the variant, everything else held equal. Prints a
Markdown table (recall@1/3 on the seeds and CMRC 2018 dev).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25L, BM25Okapi, BM25Plus

from retrieval.build import index_text
from retrieval.evaluate import Report, evaluate, load_questions
from retrieval.models import Hit, Passage, Result
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
VARIANTS: dict[str, Callable[[list[list[str]]], object]] = {
    "Okapi k1=1.5 b=0.75 (shipped)": lambda corpus: BM25Okapi(corpus),
    "Okapi k1=1.2 b=0.75": lambda corpus: BM25Okapi(corpus, k1=1.2),
    "BM25L k1=1.5 b=0.75 δ=0.5": lambda corpus: BM25L(corpus),
    "BM25+ k1=1.5 b=0.75 δ=1": lambda corpus: BM25Plus(corpus),
    "BM25+ k1=1.2 b=0.75 δ=0.5": lambda corpus: BM25Plus(corpus, k1=1.2, delta=0.5),
}


def reports(tokenizer: Tokenizer, synonyms: Synonyms) -> dict[str, dict[str, Report]]:
    """Every variant's figures on every set."""
    out: dict[str, dict[str, Report]] = {name: {} for name in VARIANTS}
    for set_name, (archive, questions_path) in SETS.items():
        with tempfile.TemporaryDirectory() as folder:
            build_index(archive, Path(folder), tokenizer)
            index = open_index(Path(folder))
            searcher = Searcher(index, tokenizer, synonyms=synonyms)
            passages = [index.passages[i] for i in range(len(index.passages))]
            corpus = [tokenizer.tokens(index_text(p)).words for p in passages]
            questions = load_questions(questions_path)
            for name, make in VARIANTS.items():
                ask = ranker(make(corpus), searcher, passages)
                out[name][set_name] = evaluate(questions, ask)
    return out


def ranker(model: Any, searcher: Searcher, passages: list[Passage]) -> Callable[[str], Result]:
    """A question → top-5 passages function over one rank-bm25 model (no answer sentence)."""

    def ask(question: str) -> Result:
        scores = model.get_scores(list(searcher.query(question).words))
        top = np.argsort(-scores, kind="stable")[:5]
        hits = tuple(
            Hit(rank, float(scores[i]), passages[i])
            for rank, i in enumerate(top, 1)
            if scores[i] > 0
        )
        return Result(question, None, hits)

    return ask


def main() -> None:
    """Print the table."""
    started = time.perf_counter()
    tokenizer = Tokenizer.from_config(REPO / "config")
    synonyms = Synonyms.from_file(REPO / "config" / "synonyms.txt")
    print("| variant (words field only) | seeds top-1 | seeds top-3 | cmrc top-1 | cmrc top-3 |")
    print("|---|---|---|---|---|")
    for name, by_set in reports(tokenizer, synonyms).items():
        s, c = by_set["seeds"], by_set["cmrc"]
        print(
            f"| {name} | {s.recall[1]}/{s.total} | {s.recall[3]}/{s.total} "
            f"| {c.recall[1] / c.total:.3f} | {c.recall[3] / c.total:.3f} |"
        )
    print(f"<!-- {time.perf_counter() - started:.0f} s -->")


if __name__ == "__main__":
    main()
