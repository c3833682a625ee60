"""Types of the C extension `retrieval._kernels` (retrieval/_kernels.c).

It takes any one-dimensional buffer of the right item type; callers go through
`retrieval.kernels`, which passes numpy arrays.
"""

from collections.abc import Sequence
from mmap import mmap

from numpy import ndarray as Array

def top_k(
    docs: Array,
    tfs: Array,
    starts: Array,
    ends: Array,
    idfs: Array,
    upper: Array,
    lengths: Array,
    ratios: Array,
    k: int,
    scores: Array,
    slots: Array,
    cand: Array,
    out_docs: Array,
    out_scores: Array,
    first: int,
    end: int,
    board: Array | None,
    half: int,
    /,
) -> int: ...
def top_k_blocks(
    docs: Array,
    tfs: Array,
    starts: Array,
    ends: Array,
    idfs: Array,
    upper: Array,
    lengths: Array,
    ratios: Array,
    k1: float,
    k: int,
    scores: Array,
    slots: Array,
    cand: Array,
    out_docs: Array,
    out_scores: Array,
    first: Array,
    max_tf: Array,
    min_len: Array,
    block: int,
    b: float,
    avgdl: float,
    usable: bool,
    first_passage: int,
    end: int,
    board: Array | None,
    half: int,
    /,
) -> int: ...
def scores_of(
    docs: Array,
    tfs: Array,
    starts: Array,
    ends: Array,
    idfs: Array,
    lengths: Array,
    ratios: Array,
    targets: Array,
    out: Array,
    /,
) -> None: ...
def block_bound(
    idf: float, max_tf: int, min_len: int, k1: float, b: float, avgdl: float, /
) -> float: ...
def forest_sums(
    rows: Array,
    n_features: int,
    starts: Array,
    thresholds: Array,
    trees: Array,
    masks: Array,
    values: Array,
    first: Array,
    out: Array,
    /,
) -> None: ...
def span_f1(starts: Array, ends: Array, likely: Array, out: Array, /) -> None: ...
def drop_pages(mapping: mmap, /) -> None: ...
def span_columns(
    table: Array,
    spans: Array,
    in_question: Array,
    text: Array,
    segments: Array,
    punct: Array,
    settled: Array,
    codes: Array,
    places: Array,
    bounds: Array,
    tails: Array,
    logs: Array,
    layout: Array,
    /,
) -> None: ...
def held_sums(
    needles: Sequence[str], weights: Sequence[float] | None, texts: Sequence[str], /
) -> list[float]: ...
def span_runs(
    lengths: Array,
    stops: Array,
    bad_first: Array,
    bad_last: Array,
    matched: Array,
    n_chars: int,
    segments: int,
    chars: int,
    long_segments: int,
    long_chars: int,
    out: Array,
    /,
) -> int: ...
def edge_sides(
    bare: Array, kept: Array, left: Array, right: Array, question: Array, out: Array, /
) -> None: ...
