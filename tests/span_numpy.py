"""The span table's columns as numpy states them, one column group at a time: the reader's
span table before its columns moved into one C loop (`retrieval.kernels.span_columns`), kept
as the oracle that loop is checked against bit for bit (tests/test_span_columns.py), as
rank-bm25 is for the BM25 kernels; and the candidate spans and the question at their edges
as Python found them before they moved into C (`retrieval.kernels.span_runs`,
`retrieval.kernels.edge_sides`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import accumulate

import numpy as np

from retrieval.reader import (
    _CLASS_SHIFT,
    _CLAUSE,
    _COLUMN,
    _FAR,
    _HARD_STOP,
    _JOINS,
    _LEFT,
    _LENGTH_BINS,
    _NO_SPANS,
    _NR,
    _NS,
    _NT,
    _PUNCT,
    _SEGMENT_FLAG_COLUMNS,
    _SPAN_COLUMNS,
    _SPAN_PATTERNS,
    _TAG_CLASSES,
    _TEXT_COLUMNS,
    _WORD_FLAGS,
    LONG_SPAN_CHARS,
    LONG_SPAN_SEGMENTS,
    MAX_SPAN_CHARS,
    MAX_SPAN_SEGMENTS,
    SPAN_GROUPS,
    QuestionView,
    SpanTable,
    _Chars,
    _flags,
    _grams,
    _left_edge,
    _right_edge,
    _running,
    _span_text_columns,
    _starts,
    _tag_flags,
    _tails,
    candidate_spans,
)
from retrieval.tokenize import Tokenizer


def _columns(*columns: str) -> np.ndarray:
    return np.array([_COLUMN[name] for name in columns])


_TEXT_AT = _columns(*_TEXT_COLUMNS)
_SCALED_COLUMNS = _columns("left", "right")
_SCALED_TEXT = np.array([_LEFT, _LEFT + 2])
_JOIN = re.compile("[" + "".join(_JOINS) + "]")
_LENGTH_COLUMNS = _columns(*SPAN_GROUPS["length"])
_BIN_NUMBERS = np.arange(1, len(_LENGTH_BINS))
_HOLE_LOGS = _columns(
    "gap_left", "side_gap_left", "gram_gap_left", "gap_right", "side_gap_right", "gram_gap_right"
)
_HOLE_CLOSE = _columns(
    "after_left", "side_after", "gram_after", "before_right", "side_before", "gram_before"
)
_HOLE_BOTH = _columns("fills_hole", "side_between", "gram_between")
_PAIRS = tuple(
    (ord(pair[0]), ord(pair[1]))
    for pair in ("《》", "「」", "『』", "“”", "()", "[]", "【】", '""')
)
_FLAG_TARGETS = np.array([_COLUMN[name] for name in _SEGMENT_FLAG_COLUMNS])
_FLAG_WHERE = np.array([where for where, _ in _SEGMENT_FLAG_COLUMNS.values()])
_FLAG_BITS = np.array([bit for _, bit in _SEGMENT_FLAG_COLUMNS.values()])[:, None]
_NAME_BITS = np.array([_NR, _NS, _NT])
_NAME_COLUMNS = _columns("is_person", "is_place", "is_org")
_TAGS_AT = _COLUMN[SPAN_GROUPS["tags"][0]]


def span_table(question: QuestionView, sentence: str, tokenizer: Tokenizer) -> SpanTable:
    """`retrieval.reader.span_table`, every column written by numpy."""
    spans = candidate_spans(question, sentence, tokenizer)
    if spans is None:
        return _NO_SPANS
    table = np.zeros((len(spans.starts), len(_SPAN_COLUMNS)))
    _write_segments(table, spans.tagged, spans.first, spans.last)
    _write_spans(table, question, spans.chars, spans.starts, spans.ends, spans.in_question)
    return SpanTable(spans.starts, spans.ends, table)


def _write_spans(
    table: np.ndarray,
    question: QuestionView,
    chars: _Chars,
    starts: np.ndarray,
    ends: np.ndarray,
    in_question: np.ndarray,
) -> None:
    """Fill in the span rows' columns that the segments do not (`_write_segments`)."""
    normal = chars.normal
    n, sizes, after = len(normal), ends - starts, ends + 1
    text = _span_text_parts(question, chars, starts, ends)
    table[:, _TEXT_AT] = text
    fit = table[:, _COLUMN[f"is_{question.asks}"]] if question.asks else np.zeros(len(starts))
    spots = [(normal.find(w), len(w)) for w in question.words if w in normal]
    distance = np.full(len(starts), float(n))
    if spots:
        p, size = np.array(spots).T
        outside = (p >= ends[:, None]) | (p + size <= starts[:, None])
        gap = np.minimum(np.abs(p - ends[:, None]), np.abs(starts[:, None] - (p + size)))
        distance = np.where(outside, gap, n).min(axis=1).astype(np.float64)
    joined = _running(_flags(normal, _JOIN))
    joins = np.log1p(joined[ends] - joined[starts])
    left, left_any = text[:, _LEFT], text[:, _LEFT + 1]
    right, right_any = text[:, _LEFT + 2], text[:, _LEFT + 3]
    any_side = left_any + right_any
    near = distance <= 1
    open_question, explains = float(question.asks is None), float(question.explains)
    log_chars = np.log1p(sizes)
    settled_before, settled_after = chars.settled[starts], chars.settled[after]
    table[:, _COLUMN["fit"]] = fit
    table[:, _COLUMN["asks_none"]] = open_question
    table[:, _SCALED_COLUMNS] = text[:, _SCALED_TEXT] / 6
    table[:, _COLUMN["both"]] = (left > 0) & (right > 0)
    table[:, _COLUMN["near"]] = near
    table[:, _COLUMN["log_distance"]] = np.log1p(distance)
    table[:, _COLUMN["any_both"]] = left_any * right_any
    table[:, _COLUMN["fit_near"]] = (fit > 0) & near
    table[:, _COLUMN["fit_context"]] = fit * any_side
    table[:, _COLUMN["noun_context"]] = table[:, _COLUMN["is_noun"]] * any_side
    table[:, _COLUMN["in_question"]] = in_question
    table[:, _COLUMN["log_chars"]] = log_chars
    table[:, _COLUMN["share"]] = sizes / max(n, 1)
    table[:, _COLUMN["punct_after"]] = chars.punct[after]
    table[:, _COLUMN["punct_before"]] = chars.punct[starts]
    table[:, _COLUMN["start"]] = starts == 0
    table[:, _COLUMN["end"]] = ends >= len(normal.rstrip("。！？!?；;…"))
    table[:, _COLUMN["open_length"]] = open_question * log_chars
    table[:, _COLUMN["starts_run"]] = settled_before
    table[:, _COLUMN["ends_run"]] = settled_after
    table[:, _COLUMN["whole_run"]] = settled_before & settled_after
    _write_hole(table, question, normal, starts, ends, fit)
    table[:, _COLUMN["joins"]] = joins
    table[:, _COLUMN["explains_joins"]] = explains * joins
    table[:, _COLUMN["explains_length"]] = explains * log_chars
    _write_head(table, question, normal, starts, ends)
    table[:, _COLUMN["unbalanced"]] = _unbalanced(chars.codes, starts, ends)
    length_bin = np.searchsorted(_LENGTH_BINS, sizes, side="right") - 1
    table[:, _LENGTH_COLUMNS] = length_bin[:, None] == _BIN_NUMBERS


def _write_hole(
    table: np.ndarray,
    question: QuestionView,
    normal: str,
    starts: np.ndarray,
    ends: np.ndarray,
    fit: np.ndarray,
) -> None:
    """The "hole" group: how close a span sits after the question's word before its question
    word, and before its word after it (…由【村雨城】改编 for 由谁改编); the same for the
    nearest of all the question's words on each side that the sentence holds (`side_*`), and
    for the nearest of the bigrams of the six characters on each side (`gram_*`: 出任 is not
    司职, but the question's 场上 is two characters before 中锋 however jieba cuts them),
    next to the span or not, and × what is asked fits or × no kind is asked."""
    gaps = np.concatenate((
        _gaps(normal, ((question.hole_left,), question.before_wh, _grams(question.left)),
              starts, before=True),
        _gaps(normal, ((question.hole_right,), question.after_wh, _grams(question.right)),
              ends, before=False),
    ))  # fmt: skip
    # Rows: the hole word, the side words and the bigrams, before the span, then after it.
    close = gaps <= 1
    either = close[:3] | close[3:]
    table[:, _HOLE_LOGS] = np.log1p(gaps).T
    table[:, _HOLE_CLOSE] = close.T
    table[:, _HOLE_BOTH] = (close[:3] & close[3:]).T
    table[:, _COLUMN["in_hole"]] = (gaps[0] < _FAR) & (gaps[3] < _FAR)
    table[:, _COLUMN["fit_hole"]] = fit * either[0]
    table[:, _COLUMN["fit_gram"]] = fit * either[2]
    table[:, _COLUMN["none_gram"]] = float(question.asks is None) * either[2]


def _write_head(
    table: np.ndarray, question: QuestionView, normal: str, starts: np.ndarray, ends: np.ndarray
) -> None:
    """The "head" group: how much of what follows the question word a span ends with
    (多元化金融企业 for 是什么类型的企业), and whether it says more than that; the same for the
    start of what follows it (大曼彻斯特郡 for 柴郡的东北方是哪个郡); whether and how much
    of the span the question's bigrams cover."""
    sizes = ends - starts
    tails = _tails(question, normal, ends).reshape(-1, 2)
    tail, named = np.minimum(tails[ends], sizes[:, None]).T
    # The question's bigrams inside the span: an answer rarely repeats the question, and its
    # single characters (的, 是) say less of that than its bigrams.
    grams = np.zeros(len(normal), dtype=bool)
    grams[_starts(normal, question.grams)] = True
    at = _running(grams)
    inside = at[np.maximum(ends - 1, starts)] - at[starts]
    table[:, _COLUMN["head_tail"]] = tail / 4
    table[:, _COLUMN["head_more"]] = (tail > 0) & (sizes > tail)
    table[:, _COLUMN["head_first"]] = (named > 0) & (sizes > named)
    table[:, _COLUMN["gram_inside"]] = inside > 0
    table[:, _COLUMN["gram_share"]] = inside / np.maximum(sizes - 1, 1)


def _unbalanced(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether a span opens a bracket or quote it does not close, or closes one it did not
    open (著《图雅的婚事, 族称为「远吠之神): a cut answer. `codes`: the sentence's code points."""
    odd = np.zeros(len(starts), dtype=bool)
    present = set(codes.tolist())
    for opening, closing in _PAIRS:
        if opening not in present and closing not in present:
            continue
        opens = _running(codes == opening)
        if opening == closing:
            odd |= (opens[ends] - opens[starts]) % 2 == 1
            continue
        closes = _running(codes == closing)
        odd |= opens[ends] - opens[starts] != closes[ends] - closes[starts]
    return odd


def _gaps(
    text: str, word_sets: Sequence[Sequence[str]], edges: np.ndarray, *, before: bool
) -> np.ndarray:
    """Per set of words, characters from each edge back to the end of the nearest occurrence
    of any of them before it (`before`), or on to the start of the nearest after it; at most
    `_FAR` (sets × edges)."""
    n = len(text)
    # Per position 0 … n: the nearest mark at or before it (after it), or one too far away.
    marks = np.full((len(word_sets), n + 1), -2 * _FAR - n if before else 2 * _FAR + n)
    for row, words in zip(marks, word_sets, strict=True):
        at = [a + len(w) if before else a for w in words for a in _starts(text, (w,))]
        row[at] = at
    if before:
        nearest = np.maximum.accumulate(marks, axis=1)
        gaps = edges - nearest[:, edges]
    else:
        nearest = np.minimum.accumulate(marks[:, ::-1], axis=1)[:, ::-1]
        gaps = nearest[:, edges] - edges
    return np.minimum(gaps, _FAR).astype(np.float64)


def _write_segments(
    table: np.ndarray, tagged: Sequence[tuple[str, str]], first: np.ndarray, last: np.ndarray
) -> None:
    """Fill in what spans' segments and their neighbours say (0 for matched spans, first −1):
    names, noun/verb ends, the segment count, the boundary and run flags, and the tag class
    before, first, last and after (one-hot)."""
    # The last entry stands for "no segment": index −1 before the first, len after the last.
    # A segment's word sets a flag for 是, 为, 的 and ·, its tag all the others.
    flags = np.array(
        [*(_tag_flags(tag) | _WORD_FLAGS.get(word, 0) for word, tag in tagged), 0], dtype=np.int64
    )
    tagged_span = first >= 0
    size = np.where(tagged_span, last - first + 1, 0)
    counts = np.zeros((len(flags), 3), dtype=np.int64)
    np.cumsum((flags[:-1, None] >> _NAME_BITS) & 1, axis=0, out=counts[1:])
    table[:, _NAME_COLUMNS] = (counts[last + 1] - counts[first] == size[:, None]) & tagged_span[
        :, None
    ]
    around = flags[np.stack((np.where(tagged_span, first - 1, -1), first, last,
                             np.where(tagged_span, last + 1, -1)))]  # fmt: skip
    table[:, _FLAG_TARGETS] = ((around[_FLAG_WHERE] >> _FLAG_BITS) & 1).T
    table[:, _COLUMN["segments"]] = size
    table[:, _COLUMN["untagged"]] = ~tagged_span
    classes = around >> _CLASS_SHIFT  # 4 × spans, tag class + 1
    rows, place = np.nonzero(classes.T)
    table[rows, _TAGS_AT + place * len(_TAG_CLASSES) + classes.T[rows, place] - 1] = 1.0


_MATCHED = (-1, -1)  # the segments of a span a pattern matched: none


def span_candidates(
    normal: str, tagged: Sequence[tuple[str, str]], *, clause_runs: bool = False
) -> dict[tuple[int, int], tuple[int, int]]:
    """`reader.span_candidates` as Python and a dict, before its runs moved into C
    (`kernels.span_runs`): each span, as (start, end), maps to its first and last segment,
    (−1, −1) for a span that a pattern matched, in the order found."""
    words = [word for word, _ in tagged]
    bounds = [0, *accumulate(map(len, words))]
    stops = [bool(_HARD_STOP.search(word)) for word in words]
    for k in range(1, len(words) - 1):
        # 33,700: a comma between digits is part of the number, not a clause break.
        if words[k] == "," and words[k - 1][-1].isdigit() and words[k + 1][0].isdigit():
            stops[k] = False
    # A span may open with 《 or “ and close with 》, ” or %, but not with other punctuation.
    joined = "".join(words)
    punct = _flags(joined, _PUNCT).tolist()
    bad_first = [punct[at] and joined[at] not in '《“"' for at in bounds[:-1]]
    bad_last = [punct[at - 1] and joined[at - 1] not in '》”"%)）' for at in bounds[1:]]
    count = len(words)
    next_stop = [count] * (count + 1)  # the first stop at or after each segment
    for k in range(count - 1, -1, -1):
        next_stop[k] = k if stops[k] else next_stop[k + 1]
    found: dict[tuple[int, int], tuple[int, int]] = {}
    for i in range(count):
        if bad_first[i]:
            continue
        start, stop = bounds[i], next_stop[i]
        for j in range(i, min(i + MAX_SPAN_SEGMENTS, stop)):
            end = bounds[j + 1]
            if end - start > MAX_SPAN_CHARS:
                break
            if not bad_last[j]:
                found[start, end] = (i, j)
        # Longer spans only up to a clause's end (意大利语、法语、西班牙语与英语。): the one
        # that ends right before the first stop, if it is far enough and not too long.
        j = stop - 1
        if (
            i + MAX_SPAN_SEGMENTS <= j < min(i + LONG_SPAN_SEGMENTS, count - 1)
            and bounds[j + 1] - start <= LONG_SPAN_CHARS
            and not bad_last[j]
        ):
            found[start, bounds[j + 1]] = (i, j)
    clauses = [m.span() for m in _CLAUSE.finditer(normal)] if clause_runs else []
    for i, (start, end) in enumerate(clauses):
        # Why and how are answered by clauses: runs of two or three, joined by ， or ；.
        for later, later_end in clauses[i + 1 : i + 3]:
            if later != end + 1 or normal[end] not in _JOINS:
                break
            found.setdefault((start, later_end), _MATCHED)
            end = later_end
    for pattern in _SPAN_PATTERNS:
        for m in pattern.finditer(normal):
            span = m.span()
            if span[1] > span[0] and span not in found:
                found[span] = _MATCHED
    return found


def _span_text_parts(
    question: QuestionView, chars: _Chars, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """`reader._span_text_parts` as it was before the question at the spans' edges moved into
    C (`kernels.edge_sides`): the edges worked out in Python, offset by offset."""
    normal = chars.normal
    table, skips = _span_text_columns(question, chars, starts, ends)
    starts_at, ends_at = starts.tolist(), ends.tolist()
    # Spans share edges: each edge is worked out once, then looked up. The question goes on
    # past an edge only when the character beside it is one of the question's.
    bare, asked = _PUNCT.sub("", normal), question.bare
    kept = _running(~chars.punct[1:-1]).tolist()  # characters before i that are not punctuation
    sides = np.zeros((2, len(normal) + 1, 2))  # by offset: left edges, right edges
    left_at = [s for s in set(starts_at) if kept[s] and bare[kept[s] - 1] in asked]
    if left_at:
        sides[0, left_at] = [_left_edge(question, bare[: kept[s]]) for s in left_at]
    right_at = [e for e in set(ends_at) if kept[e] < len(bare) and bare[kept[e]] in asked]
    if right_at:
        sides[1, right_at] = [_right_edge(question, bare[kept[e] :], 0) for e in right_at]
    table[:, _LEFT : _LEFT + 2] = sides[0, starts]
    table[:, _LEFT + 2 : _LEFT + 4] = sides[1, ends]
    for k in np.flatnonzero(skips).tolist():
        table[k, _LEFT + 2 : _LEFT + 4] = _right_edge(question, bare[kept[ends_at[k]] :], skips[k])
    return table
