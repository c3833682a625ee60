"""The span table's C loop (`kernels.span_columns`) against its numpy statement
(tests/span_numpy.py, the table as it was written before): the same bits, and bad arguments
refused before any loop runs."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retrieval import _kernels, kernels
from retrieval import reader as rd
from retrieval.passages import sentence_spans
from retrieval.tokenize import Tokenizer, fold
from tests import span_numpy
from tests.conftest import SEEDS, SHARED

TOKENIZER = Tokenizer()


def view(question: str) -> rd.QuestionView:
    """A question view with every word weighted alike."""
    words = TOKENIZER.words(question)
    return rd.QuestionView.make(question, words, [1.0] * len(words))


def assert_same_spans(question: rd.QuestionView, sentence: str) -> None:
    """C's candidate spans of a sentence are Python's, in the same order."""
    normal = fold(sentence)
    tagged = rd._segments(normal, TOKENIZER)
    rows = rd.span_candidates(normal, tagged, clause_runs=question.explains)
    found = span_numpy.span_candidates(normal, tagged, clause_runs=question.explains)
    assert rows.tolist() == [[*span, *segments] for span, segments in found.items()]


def assert_same_table(question: rd.QuestionView, sentence: str) -> int:
    """C's and numpy's tables of a sentence's spans are equal bit for bit (its candidate spans
    too); their span count."""
    assert_same_spans(question, sentence)
    fast = rd.span_table(question, sentence, TOKENIZER)
    slow = span_numpy.span_table(question, sentence, TOKENIZER)
    assert fast.starts.tolist() == slow.starts.tolist()
    assert fast.ends.tolist() == slow.ends.tolist()
    assert fast.features.shape == slow.features.shape
    differ = np.argwhere(fast.features.view(np.uint64) != slow.features.view(np.uint64))
    names = rd.names(rd.SPAN_GROUPS)
    assert not len(differ), [(sentence, names[j], fast.features[i, j], slow.features[i, j])
                             for i, j in differ[:5]]  # fmt: skip
    return len(fast.starts)


def sentences(text: str) -> list[str]:
    return [text[s:e].strip() for s, e in sentence_spans(text, clauses=False)]


def test_every_seed_question_against_every_sentence_of_its_source() -> None:
    spans = 0
    for line in (SHARED / "eval" / "seed_qa.jsonl").open(encoding="utf-8"):
        seed = json.loads(line)
        asked = view(seed["question"])
        for sentence in sentences((SEEDS / seed["source"]).read_text(encoding="utf-8")):
            spans += assert_same_table(asked, sentence)
    assert spans > 10_000  # what the test stands for: many spans, of every kind


def test_cmrc_questions_against_their_sources() -> None:
    """Wikipedia's sentences: names, dates, brackets, quotes, why and how questions."""
    folder = SHARED / "eval" / "cmrc2018_dev"
    lines = (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    asked_why = 0
    for line in lines[::40]:
        item = json.loads(line)
        asked = view(item["question"])
        asked_why += asked.explains
        text = (folder / "archive" / item["source"]).read_text(encoding="utf-8")
        for sentence in sentences(text)[:25]:
            assert_same_table(asked, sentence)
    assert asked_why  # clause runs are among the spans checked


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["谁杀了司马晏？", "广茂铁路全长多少公里？", "为什么要建铁路？",
                     "《书》是哪一年出版的？", "该公司在哪个城市？", "额亦都有几位妻子"]),
    st.text(alphabet="广三铁路1903年建成，,；;。全长公里《书》“”「」()\"刘曜杀了司马晏 五位妻子"
                     "是的为·二十余人", min_size=1, max_size=90),
)  # fmt: skip
def test_any_sentence_gives_numpy_s_table(question: str, sentence: str) -> None:
    assert_same_table(view(question), sentence)


def arguments() -> dict[str, np.ndarray]:
    """A valid call's arguments: one span (characters 2–3, one segment) of a four-character
    sentence, the question's word before its question word ending at 1, one question word at
    0 (one character)."""
    n, m = 4, 1
    width = len(rd.names(rd.SPAN_GROUPS))
    return {
        "table": np.zeros((m, width)),
        "spans": np.array([2, 4, 0, 0], dtype=np.int64),
        "in_question": np.zeros(m),
        "text": np.zeros((m, 13)),
        "segments": np.array([0, 0], dtype=np.int64),
        "punct": np.zeros(n + 2, dtype=bool),
        "settled": np.zeros(n + 2, dtype=bool),
        "codes": np.array([ord(c) for c in "广三铁路"], dtype=np.uint32),
        "places": np.array([1, 0, 1], dtype=np.int64),
        "bounds": np.array([0, 1, 1, 1, 1, 1, 1, 1, 2, 3], dtype=np.int64),
        "tails": np.zeros(2 * (n + 1), dtype=np.int64),
        "logs": np.log1p(np.arange(64.0)),
        "layout": rd._SPAN_LAYOUT.copy(),
    }


def test_valid_arguments_fill_the_table() -> None:
    given = arguments()
    kernels.span_columns(**given)
    row = dict(zip(rd.names(rd.SPAN_GROUPS), given["table"][0].tolist(), strict=True))
    assert row["log_chars"] == np.log1p(2.0) and row["segments"] == 1.0
    assert row["gap_left"] == np.log1p(1.0) and row["after_left"] == 1.0
    assert row["near"] == 1.0 and row["log_distance"] == np.log1p(1.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("spans", np.array([0, 5, 0, 0], dtype=np.int64), "outside the sentence"),
        ("spans", np.array([2, 2, 0, 0], dtype=np.int64), "outside the sentence"),
        ("spans", np.array([0, 2, 0, 1], dtype=np.int64), "outside the sentence"),
        ("places", np.array([9, 0, 1], dtype=np.int64), "outside the sentence"),
        ("bounds", np.array([0, 1, 1, 1, 1, 1, 1, 1, 2, 2], dtype=np.int64), "run through"),
        ("bounds", np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 3], dtype=np.int64), "its size"),
        ("logs", np.log1p(np.arange(3.0)), "lengths"),
        ("tails", np.zeros(3, dtype=np.int64), "lengths"),
        ("layout", rd._SPAN_LAYOUT[:-1].copy(), "every slot"),
        ("text", np.zeros((1, 12)), "lengths"),
        ("punct", np.zeros(5, dtype=bool), "lengths"),
        ("codes", np.zeros(4, dtype=np.int64), "format"),
    ],
)
def test_bad_arguments_are_refused(name: str, value: np.ndarray, message: str) -> None:
    given = arguments() | {name: value}
    with pytest.raises(ValueError, match=message):
        kernels.span_columns(**given)


def test_a_column_outside_the_table_is_refused() -> None:
    for value in (len(rd.names(rd.SPAN_GROUPS)), -1):
        given = arguments()
        given["layout"][0] = value  # the first slot: the "fit" column
        with pytest.raises(ValueError, match="outside the table"):
            kernels.span_columns(**given)


def run_arguments() -> dict[str, object]:
    """A valid `span_runs` call: a segment of one character, then one of two that stops the
    clause (as "。" would), and a matched span over all three characters."""
    return {
        "lengths": np.array([1, 2], dtype=np.int64),
        "stops": np.array([False, True]),
        "bad_first": np.zeros(2, dtype=bool),
        "bad_last": np.zeros(2, dtype=bool),
        "matched": np.array([0, 3, 0, 1], dtype=np.int64),
        "n_chars": 3,
        "segments": 5,
        "chars": 24,
        "long_segments": 9,
        "long_chars": 40,
        "out": np.empty((2 * 6 + 2, 4), dtype=np.int64),
    }


def test_runs_stop_at_the_clause_and_matched_spans_come_once() -> None:
    given = run_arguments()
    rows = kernels.span_runs(**given)  # type: ignore[arg-type]
    found = given["out"][:rows].tolist()  # type: ignore[index]
    # only the first segment before the stop; (0, 1) matched again is left out
    assert found == [[0, 1, 0, 0], [0, 3, -1, -1]]
    # limits past the segments' count change nothing (and overflow nothing)
    huge = run_arguments() | {"segments": 2**63 - 1, "long_segments": 2**63 - 1}
    rows = kernels.span_runs(**huge)  # type: ignore[arg-type]
    assert huge["out"][:rows].tolist() == found  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("lengths", np.array([0, 2], dtype=np.int64), "at least one character"),
        ("lengths", np.array([2, 2], dtype=np.int64), "fit in n_chars"),
        ("stops", np.zeros(3, dtype=bool), "one entry for each segment"),
        ("bad_last", np.zeros(1, dtype=bool), "one entry for each segment"),
        ("matched", np.array([0, 3, 1], dtype=np.int64), "pairs"),
        ("matched", np.array([2, 2], dtype=np.int64), "start < end <= n_chars"),
        ("matched", np.array([0, 4], dtype=np.int64), "start < end <= n_chars"),
        ("long_segments", 4, "long_segments >= segments"),
        ("out", np.empty((5, 4), dtype=np.int64), "out must hold"),
        ("stops", np.zeros(2, dtype=np.int64), "format"),
    ],
)
def test_bad_run_arguments_are_refused(name: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kernels.span_runs(**(run_arguments() | {name: value}))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="广三铁路全长多少公里是的，。《》", min_size=0, max_size=30),
    st.text(alphabet="广三铁路全长多少公里是的", min_size=0, max_size=12),
    st.integers(min_value=0, max_value=12),
)
def test_every_edge_is_the_python_edges(sentence: str, asked: str, at: int) -> None:
    """At every offset of a sentence, C's question at a span's edges is `_left_edge`'s and
    `_right_edge`'s, where the character beside it is the question's (0 elsewhere)."""
    question = rd.QuestionView.make(asked or "谁", [], [])
    question = replace(question, left=asked[:at][-6:], right=asked[at:][:6], bare=asked)
    bare = rd._PUNCT.sub("", sentence)
    kept = rd._running(~rd._flags(sentence, rd._PUNCT))
    sides = kernels.edge_sides(bare, kept, question.left, question.right, question.bare)
    for offset, k in enumerate(kept.tolist()):
        left = rd._left_edge(question, bare[:k]) if k and bare[k - 1] in asked else (0, 0.0)
        right = (
            rd._right_edge(question, bare[k:], 0) if k < len(bare) and bare[k] in asked
            else (0, 0.0)
        )  # fmt: skip
        assert sides[0, offset].tolist() == [float(left[0]), left[1]]
        assert sides[1, offset].tolist() == [float(right[0]), right[1]]


def test_edges_outside_the_sentence_are_refused() -> None:
    with pytest.raises(ValueError, match="within bare"):
        kernels.edge_sides("广三", np.array([0, 3]), "", "", "广")
    with pytest.raises(ValueError, match="within bare"):
        kernels.edge_sides("广三", np.array([-1, 1]), "", "", "广")
    out = np.empty(3)
    with pytest.raises(ValueError, match="4 values an offset"):
        codes = np.zeros(1, dtype=np.uint32)
        _kernels.edge_sides(codes, np.array([0, 1]), codes, codes, codes, out)
