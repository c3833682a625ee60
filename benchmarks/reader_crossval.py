"""The reader across its training sets: `python benchmarks/reader_crossval.py WORK`.

Trains on one set of `../shared/train` (rows cached in WORK by `python -m retrieval.train_reader
--work WORK`) and measures on the other, searching the other's archive: CMRC 2018 trial
(simplified) → DRCD test (traditional) and back, against the hand-set sentence scorer.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from retrieval import reader as rd
from retrieval import train_reader as tr
from retrieval.evaluate import evaluate, load_questions
from retrieval.search import Searcher, Synonyms
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer

SETS = ("cmrc2018_trial", "drcd_test")


def main() -> None:
    """Print one Markdown row per direction and scorer."""
    work = Path(sys.argv[1])
    tokenizer = Tokenizer.from_config(tr.config_dir())
    synonyms = Synonyms.from_file(tr.config_dir() / "synonyms.txt")
    threshold = rd.Weights.load().span_threshold
    print("| trained on → measured on | scorer | r@1 | r@3 | answer | EM | F1 |")
    print("|---|---|---|---|---|---|---|")
    for train, test in (SETS, SETS[::-1]):
        found = pickle.loads((work / f"{train}-all.pickle").read_bytes())
        weights = tr.train(found, tokenizer, threshold=threshold)
        index = open_index(work / test)
        questions = load_questions(tr.DEFAULT_DATA / test / "questions.jsonl")
        for name, reader in (("hand-set", None), ("learned", rd.Reader(weights, tokenizer))):
            searcher = Searcher(index, tokenizer, synonyms=synonyms, reader=reader)
            figures = evaluate(questions, lambda q, s=searcher: s.ask(q, top_k=5)).as_dict()
            keys = ("recall@1", "recall@3", "answer_hit", "short_em", "short_f1")
            cells = " | ".join(f"{figures[k]:.3f}" for k in keys)
            print(f"| {train} → {test} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
