"""Training the reader: `python -m retrieval.train_reader [--data ../shared/train]`.

Every set in the data folder (a folder with `archive/` and `questions.jsonl` holding `question`,
`source`, `answer` and `answers`, e.g. cmrc2018_trial and drcd_test) is indexed like any
archive; each question is searched and read as at run time (its 10 best passages, where the
bot reads 5: `CANDIDATES`), and the rows are labelled:

- a sentence is right when it holds an annotated answer (what "answer-hit" measures);
- a passage is right when it comes from the question's file and holds the answer;
- a span (of the right sentence of the right passage) is right when it equals an answer.

The passage and sentence models are conditional logits (a softmax over one question's rows;
scipy's L-BFGS, deterministic, no random seed needed); the span model is boosted trees
(LightGBM's lambdarank over each question's spans, one thread, deterministic). All three are
written as JSON into the package (`retrieval/reader_weights.json`), where `retrieval.reader`
scores them with numpy and the package's C extension. Needs the `train` extra (scipy,
lightgbm): `pip install -e '.[train]'`.

The committed weights are this command's output byte for byte with OpenBLAS on one thread,
`retrieval`'s default: with more threads its sums run in another order and the sentence model's
last digits differ (two threads, the default of this 2-core machine before, gave the previous
weights); a thread count set in the environment is kept, and said.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import pickle
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval import reader as rd
from retrieval.errors import RetrievalError
from retrieval.index import BM25Params
from retrieval.search import Searcher, Synonyms
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer, fold

log = logging.getLogger(__name__)
DEFAULT_DATA = Path("../shared/train")
# BM25 passages read per training question: twice what the reader reads at run time
# (rd.CANDIDATES), so that the models see more wrong passages and sentences.
CANDIDATES = 10
C = 10.0  # inverse L2 strength; the models have few features and thousands of questions
# The span trees (CMRC 2018 dev sweep: benchmarks/QUALITY.md, "Fifth pass (trees)").
TREES = 300
LEAVES = 15
LEARNING_RATE = 0.05
MIN_DATA_IN_LEAF = 20


@dataclass(frozen=True, slots=True)
class TrainQuestion:
    """One training question with every annotated answer."""

    question: str
    source: str
    answers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rows:
    """Labelled feature rows of one model; `groups` numbers the question each row is from."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray


def bare(text: str) -> str:
    """Folded text without punctuation or spaces: how answers are compared."""
    return re.sub(r"[\W_]+", "", fold(text))


def load_set(folder: Path, *, limit: int | None = None) -> list[TrainQuestion]:
    """The questions of one training set."""
    items = []
    for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            answers = tuple(item.get("answers") or [item["answer"]])
            items.append(TrainQuestion(item["question"], item["source"], answers))
    return items[:limit] if limit else items


def config_dir() -> Path:
    """The bundled config folder (dictionaries and synonyms), as the bot uses by default."""
    spec = importlib.util.find_spec("archive_bot_config")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "config"


def searcher_for(archive: Path, work: Path, tokenizer: Tokenizer) -> Searcher:
    """Index a training archive in `work` and open a searcher over it, as the bot would."""
    build_index(archive, work, tokenizer, params=BM25Params())
    synonyms = Synonyms.from_file(config_dir() / "synonyms.txt")
    return Searcher(open_index(work), tokenizer, synonyms=synonyms)


@dataclass(frozen=True, slots=True)
class Example:
    """What the three models learn from one question, searched as at run time."""

    view: rd.QuestionView
    candidates: tuple[rd.Candidate, ...]
    sentences: tuple[rd.Sentences, ...]
    answers: tuple[str, ...]  # bare
    passage_x: np.ndarray
    passage_y: tuple[int, ...]
    spans: tuple[rd.SpanRow, ...]
    span_y: tuple[int, ...]

    def sentence_y(self, rows: Sequence[rd.SentenceRow]) -> list[int]:
        """Labels of sentence rows: 1 where the sentence holds an answer."""
        texts = [c.passage.text for c in self.candidates]
        return [
            int(any(a in bare(texts[r.candidate][r.start : r.end]) for a in self.answers))
            for r in rows
        ]


def example(searcher: Searcher, question: TrainQuestion, tokenizer: Tokenizer) -> Example | None:
    """Search one question as at run time and label its passages and answer spans."""
    words = list(searcher.query(question.question).words)
    candidates = tuple(searcher.candidates(question.question, depth=CANDIDATES))
    answers = tuple(a for a in map(bare, question.answers) if a)
    if not words or not candidates or not answers:
        return None
    view = rd.QuestionView.make(question.question, words, searcher.word_idf(words))
    sentences = tuple(rd.Sentences.of(c.passage.text, view, c.folded) for c in candidates)
    passage_y = tuple(
        int(
            c.passage.source.file == question.source
            and any(a in bare(c.passage.text) for a in answers)
        )
        for c in candidates
    )
    spans: list[rd.SpanRow] = []
    span_y: list[int] = []
    for cand, split, right in zip(candidates, sentences, passage_y, strict=True):
        sentence = next(
            (
                text
                for s, e in split.spans
                if any(a in bare(text := cand.passage.text[s:e].strip()) for a in answers)
            ),
            None,
        )
        if right and sentence is not None:
            spans = rd.span_rows(view, sentence, tokenizer)
            normal = fold(sentence)
            span_y = [int(bare(normal[r.start : r.end]) in answers) for r in spans]
            break
    passage_x = rd.passage_rows(view, candidates, sentences)
    return Example(view, candidates, sentences, answers, passage_x, passage_y,
                   tuple(spans), tuple(span_y))  # fmt: skip


def examples(data: Path, work: Path, tokenizer: Tokenizer, *, limit: int | None) -> list[Example]:
    """Examples of every training set under `data`, cached in `work`."""
    sets = sorted(p for p in data.iterdir() if (p / "questions.jsonl").is_file())
    if not sets:
        raise RetrievalError(
            f"No training sets in {data}: expected folders with archive/ and questions.jsonl. "
            "Pass --data pointing at shared/train."
        )
    found: list[Example] = []
    for folder in sets:
        cache = work / f"{folder.name}-{limit or 'all'}.pickle"
        if cache.is_file():
            found += pickle.loads(cache.read_bytes())
            continue
        started = time.perf_counter()
        searcher = searcher_for(folder / "archive", work / folder.name, tokenizer)
        made = [e for q in load_set(folder, limit=limit) if (e := example(searcher, q, tokenizer))]
        cache.write_bytes(pickle.dumps(made))
        log.info(
            "%s: %d examples in %.0f s", folder.name, len(made), time.perf_counter() - started
        )
        found += made
    return found


def answerable(rows: Rows) -> tuple[Rows, np.ndarray]:
    """The rows of the questions that have a right row, and how many rows each has.

    Questions with no right row (the answer is not a candidate) teach a per-question model
    nothing: every row of theirs is equally wrong.
    """
    starts = np.flatnonzero(np.r_[True, rows.groups[1:] != rows.groups[:-1]])
    sizes = np.diff(np.r_[starts, len(rows.y)])
    useful = np.add.reduceat(rows.y, starts) > 0
    mask = np.repeat(useful, sizes)
    return Rows(rows.x[mask], rows.y[mask], rows.groups[mask]), sizes[useful]


def fit(rows: Rows, features: tuple[str, ...], *, drop: Iterable[str] = ()) -> rd.Linear:
    """Fit a conditional logit: within each question, a softmax over its rows picks the right one.

    A plain logistic regression scores every row against all others of every question; the
    reader only ever compares the rows of one question, and this is what the softmax learns
    (the likelihood of "one of the right rows" per question, L2 penalty 1/C). Questions with
    no right row teach nothing here and are left out. Dropped features get weight 0.
    """
    from scipy.optimize import minimize

    keep = np.array([name not in set(drop) for name in features])
    answered, sizes = answerable(rows)
    x, y = answered.x[:, keep], answered.y.astype(np.float64)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    group = np.repeat(np.arange(len(starts)), sizes)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        score = z @ w
        top = np.maximum.reduceat(score, starts)
        e = np.exp(score - top[group])
        every, right = np.add.reduceat(e, starts), np.add.reduceat(e * y, starts)
        value = -(np.log(right) - np.log(every)).sum() + 0.5 / C * w @ w
        grad = -(z.T @ (e * y / right[group] - e / every[group])) + w / C
        return float(value), grad

    found = minimize(loss, np.zeros(z.shape[1]), jac=True, method="L-BFGS-B")
    full_mean, full_scale, coef = (np.zeros(len(features)), np.ones(len(features)),
                                   np.zeros(len(features)))  # fmt: skip
    full_mean[keep], full_scale[keep], coef[keep] = mean, scale, found.x
    return rd.Linear(features, full_mean, full_scale, coef, 0.0)


def grow(rows: Rows, features: tuple[str, ...], *, drop: Iterable[str] = ()) -> rd.Trees:
    """Fit the span trees: LightGBM's lambdarank, each question's spans one list to rank.

    One thread, `deterministic`, a fixed seed and no sampling (the feature bins too are made
    from every row: from LightGBM's default sample of 200,000 they moved CMRC dev EM by up to
    0.007 with the seed): the same rows grow the same trees. Dropped features are held at 0,
    so that no tree splits on them.
    """
    import lightgbm

    answered, sizes = answerable(rows)
    x = answered.x.copy()
    x[:, [name in set(drop) for name in features]] = 0.0
    params = {
        "objective": "lambdarank",
        "num_leaves": LEAVES,
        "learning_rate": LEARNING_RATE,
        "min_data_in_leaf": MIN_DATA_IN_LEAF,
        "num_threads": 1,
        "deterministic": True,
        "force_col_wise": True,
        "bin_construct_sample_cnt": len(x),  # bins from every row, not a seeded sample
        "seed": 0,
        "verbose": -1,
    }
    data = lightgbm.Dataset(x, label=answered.y, group=sizes)
    booster = lightgbm.train(params, data, num_boost_round=TREES)
    return flat_trees(booster.dump_model()["tree_info"], features)


def flat_trees(dumped: Sequence[dict[str, Any]], features: tuple[str, ...]) -> rd.Trees:
    """LightGBM's dumped trees as `rd.Trees`: splits in preorder (children after parents).

    Thresholds keep 6 significant digits and leaf values 6 decimals, so that the file reads
    in a diff and a retraining rewrites it byte for byte.
    """
    splits: list[tuple[int, float]] = []
    children: list[list[int]] = []
    values: list[float] = []

    def add(node: dict[str, Any]) -> int:
        if "leaf_value" in node:
            values.append(round(node["leaf_value"], 6))
            return ~(len(values) - 1)
        if node["decision_type"] != "<=" or node["missing_type"] != "None":
            raise RetrievalError(
                f"A tree splits with {node['decision_type']} and missing values of type "
                f"{node['missing_type']}; the reader walks only '<=' splits without missing "
                "values. Are some span features NaN?"
            )
        at = len(splits)
        splits.append((node["split_feature"], float(f"{node['threshold']:.6g}")))
        children.append([0, 0])
        children[at] = [add(node["left_child"]), add(node["right_child"])]
        return at

    roots = [add(tree["tree_structure"]) for tree in dumped]
    pairs = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    return rd.Trees(
        features, np.asarray([f for f, _ in splits], dtype=np.int64),
        np.asarray([t for _, t in splits], dtype=np.float64), pairs[:, 0].copy(),
        pairs[:, 1].copy(), np.asarray(values, dtype=np.float64), np.asarray(roots, np.int64),
    )  # fmt: skip


def stack(
    parts: Iterable[tuple[np.ndarray | Sequence[Sequence[float]], Sequence[int], int]],
) -> Rows:
    """Rows of many questions in one matrix."""
    xs, ys, gs = [], [], []
    for x, y, group in parts:
        if len(x):
            xs.append(np.asarray(x, dtype=np.float64))
            ys.append(np.asarray(y))
            gs.append(np.full(len(y), group))
    return Rows(np.vstack(xs), np.concatenate(ys), np.concatenate(gs))


def sentence_rows(
    ex: Example, passage: rd.Linear, tokenizer: Tokenizer
) -> tuple[list[rd.SentenceRow], list[int]]:
    """Sentence rows of the passages the fitted passage model puts first, with labels."""
    scores = passage.logits(ex.passage_x)
    pool = np.argsort(-scores, kind="stable")[: rd.SENTENCE_POOL].tolist()
    rows = rd.sentence_rows(ex.view, ex.candidates, ex.sentences, pool, scores, tokenizer)
    return rows, ex.sentence_y(rows)


def train(
    found: Sequence[Example], tokenizer: Tokenizer, *, drop: Iterable[str] = (), threshold: float
) -> rd.Weights:
    """Fit the three models on examples (`drop`: feature names to leave out, for ablations)."""
    drop = set(drop)
    passages = stack((ex.passage_x, ex.passage_y, g) for g, ex in enumerate(found))
    passage = fit(passages, rd.names(rd.PASSAGE_GROUPS), drop=drop)
    parts = []
    for g, ex in enumerate(found):
        rows, labels = sentence_rows(ex, passage, tokenizer)
        parts.append(([r.features for r in rows], labels, g))
    sentence = fit(stack(parts), rd.names(rd.SENTENCE_GROUPS), drop=drop)
    spans = stack(([r.features for r in ex.spans], ex.span_y, g) for g, ex in enumerate(found))
    span = grow(spans, rd.names(rd.SPAN_GROUPS), drop=drop)
    meta = {
        "trained_on": len(found),
        "C": C,
        "span_trees": {"trees": TREES, "leaves": LEAVES, "learning_rate": LEARNING_RATE,
                  "min_data_in_leaf": MIN_DATA_IN_LEAF},
        "dropped": sorted(drop),
    }  # fmt: skip
    return rd.Weights(sentence, passage, span, threshold, meta)


def group_names(group: str) -> tuple[str, ...]:
    """The feature names of a group, in whichever models have it (or the name itself)."""
    models = (rd.PASSAGE_GROUPS, rd.SENTENCE_GROUPS, rd.SPAN_GROUPS)
    found = tuple(name for groups in models for name in groups.get(group, ()))
    return found or (group,)


def default_output() -> Path:
    """Where the shipped weights live (inside the package, next to this module)."""
    return Path(__file__).resolve().parent / rd.WEIGHTS_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """Retrain the reader and write its weights."""
    parser = argparse.ArgumentParser(prog="python -m retrieval.train_reader", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of training sets")
    parser.add_argument("--out", type=Path, default=default_output(), help="weights file to write")
    parser.add_argument("--work", type=Path, help="folder for indexes and cached rows (temp)")
    parser.add_argument("--limit", type=int, help="first N questions of each set (for tests)")
    parser.add_argument("--drop", default="", help="comma-separated feature groups to leave out")
    parser.add_argument("--threshold", type=float, default=0.05, help="span confidence needed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        log.warning(
            "OPENBLAS_NUM_THREADS is %s: the committed weights were trained with 1, and the "
            "sentence model's last digits may differ",
            os.environ.get("OPENBLAS_NUM_THREADS"),
        )
    drop = [name for group in filter(None, args.drop.split(",")) for name in group_names(group)]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="train-reader-") as temp:
        work = args.work or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        tokenizer = Tokenizer.from_config(config_dir())
        try:
            found = examples(args.data, work, tokenizer, limit=args.limit)
        except RetrievalError as error:
            print(f"train_reader: {error}", file=sys.stderr)
            return 2
        weights = train(found, tokenizer, drop=drop, threshold=args.threshold)
    args.out.write_text(weights.to_json(), encoding="utf-8")
    log.info("%d questions → %s in %.0f s", len(found), args.out, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    # Run through the imported module, so that cached rows pickle as retrieval.train_reader's.
    from retrieval import train_reader

    sys.exit(train_reader.main())
