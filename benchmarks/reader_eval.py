"""The reader against today's hand-set weights, in one process: `python benchmarks/reader_eval.py`.

For each weights file given (or "hand" for the hand-set sentence scorer of retrieval/answer.py),
prints recall@1/3, answer-hit and the short answer's EM and F1 on a questions file, searching
an index built in a private folder. Used for the ablation table in benchmarks/QUALITY.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from retrieval.errors import IndexMissingError
from retrieval.evaluate import evaluate, load_questions
from retrieval.reader import Reader, Weights
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer
from retrieval.train_reader import config_dir


def main() -> None:
    """Evaluate each weights file on one questions file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("questions", type=Path)
    parser.add_argument("archive", type=Path)
    parser.add_argument("index", type=Path, help="private index folder (built if missing)")
    parser.add_argument("weights", nargs="+", help='weights JSON files, or "hand"')
    args = parser.parse_args()
    tokenizer = Tokenizer.from_config(config_dir())
    try:
        index = open_index(args.index)
    except IndexMissingError:
        build_index(args.archive, args.index, tokenizer)
        index = open_index(args.index)
    synonyms = Synonyms.from_file(config_dir() / "synonyms.txt")
    questions = load_questions(args.questions)
    for name in args.weights:
        reader = None if name == "hand" else Reader(Weights.load(Path(name)), tokenizer)
        searcher = Searcher(index, tokenizer, synonyms=synonyms, reader=reader)
        started = time.perf_counter()
        report = evaluate(questions, lambda q, s=searcher: s.ask(q, top_k=5)).as_dict()
        ms = (time.perf_counter() - started) / len(questions) * 1000
        keys = ("recall@1", "recall@3", "answer_hit", "short_em", "short_f1", "short_answered")
        figures = {k: report[k] for k in keys} | {"ms_per_question": round(ms, 2)}
        print(json.dumps({"weights": name, **figures}), flush=True)


if __name__ == "__main__":
    main()
