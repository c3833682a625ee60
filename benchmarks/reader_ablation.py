"""The reader's feature ablation: `python benchmarks/reader_ablation.py WORK`.

WORK is the folder `python -m retrieval.train_reader --work WORK` filled (indexed training sets
and cached rows). For the full model, each feature group left out in turn, and today's hand-set
sentence scorer, prints one Markdown row of CMRC 2018 dev and seed figures (recall@1/3,
answer-hit, short EM and F1), all searched in one process over private indexes in /tmp.
"""

from __future__ import annotations

import sys
from pathlib import Path

from retrieval import reader as rd
from retrieval import train_reader as tr
from retrieval.errors import IndexMissingError
from retrieval.evaluate import evaluate, load_questions
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import Index, open_index
from retrieval.tokenize import Tokenizer

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SETS = {
    "seeds": (EVAL / "seed_qa.jsonl", Path(__file__).resolve().parent.parent / "seeds"),
    "cmrc": (EVAL / "cmrc2018_dev" / "questions.jsonl", EVAL / "cmrc2018_dev" / "archive"),
}
GROUPS = sorted({*rd.PASSAGE_GROUPS, *rd.SENTENCE_GROUPS, *rd.SPAN_GROUPS})


def opened(name: str, archive: Path, tokenizer: Tokenizer) -> Index:
    """A private index of an evaluation archive, built on first use."""
    folder = Path("/tmp/reader-ablation-index") / name
    try:
        return open_index(folder)
    except IndexMissingError:
        build_index(archive, folder, tokenizer)
        return open_index(folder)


def row(label: str, weights: rd.Weights | None, tokenizer: Tokenizer) -> str:
    """One Markdown row: seeds then CMRC figures."""
    cells = [label]
    synonyms = Synonyms.from_file(tr.config_dir() / "synonyms.txt")
    for name, (questions, archive) in SETS.items():
        reader = None if weights is None else rd.Reader(weights, tokenizer)
        index = opened(name, archive, tokenizer)
        searcher = Searcher(index, tokenizer, synonyms=synonyms, reader=reader)
        report = evaluate(load_questions(questions), lambda q, s=searcher: s.ask(q, top_k=5))
        figures = report.as_dict()
        keys = ("recall@1", "recall@3", "answer_hit", "short_em", "short_f1")
        cells += [f"{figures[k]:.3f}" for k in keys]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    """Print the ablation table."""
    work = Path(sys.argv[1])
    tokenizer = Tokenizer.from_config(tr.config_dir())
    found = tr.examples(tr.DEFAULT_DATA, work, tokenizer, limit=None)
    shipped = rd.Weights.load()
    threshold = shipped.span_threshold
    print("| model | seeds r@1 | r@3 | answer | EM | F1 | CMRC r@1 | r@3 | answer | EM | F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(row("hand-set weights (retrieval/answer.py)", None, tokenizer), flush=True)
    print(row("learned, all features (shipped)", shipped, tokenizer), flush=True)
    for group in GROUPS:
        weights = tr.train(found, tokenizer, drop=tr.group_names(group), threshold=threshold)
        print(row(f"without {group}", weights, tokenizer), flush=True)


if __name__ == "__main__":
    main()
