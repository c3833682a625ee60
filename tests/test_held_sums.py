"""`kernels.held_sums` (the reader's covers of sentences and windows) against the Python it
replaced: the same floats, bit for bit, and bad arguments refused."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval import kernels

# Few distinct characters, so that needles are often in the texts, at their edges and
# overlapping; an empty needle is in every text, as `in` has it.
CHARS = st.sampled_from("的水长江黄河一二3,。𠀀")
NEEDLES = st.lists(st.text(CHARS, max_size=3), max_size=8)
TEXTS = st.lists(st.text(CHARS, max_size=12), max_size=6)
WEIGHT = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", value) for value in values]


@given(NEEDLES, TEXTS, st.data())
def test_weighted_sums_are_the_generators_bit_for_bit(needles, texts, data) -> None:
    """Each text's sum of the weights of the needles it holds, added in the needles' order."""
    weights = data.draw(st.lists(WEIGHT, min_size=len(needles), max_size=len(needles)))
    expected = [
        float(sum(w for n, w in zip(needles, weights, strict=True) if n in text)) for text in texts
    ]
    assert bits(kernels.held_sums(needles, weights, texts)) == bits(expected)


@given(NEEDLES, TEXTS)
def test_without_weights_they_are_counted(needles, texts) -> None:
    assert kernels.held_sums(needles, None, texts) == [
        float(sum(n in text for n in needles)) for text in texts
    ]


def test_order_of_addition_is_the_needles() -> None:
    """A sum whose value depends on the order of addition comes out as Python adds it: 1.0
    (1e16 + 1.0 rounds to 1e16); added the other way round it would be 0.0."""
    weights = [1e16, 1.0, -1e16, 1.0]
    assert kernels.held_sums(["a", "b", "c", "d"], weights, ["abcd"]) == [1.0]
    assert sum(reversed(weights)) == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="one entry for each needle"):
        kernels.held_sums(["a", "b"], [1.0], ["ab"])
    with pytest.raises(TypeError, match="needles must be strings"):
        kernels.held_sums(["a", b"b"], None, ["ab"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="texts must be strings"):
        kernels.held_sums(["a"], None, ["ab", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        kernels.held_sums(["a"], ["x"], ["ab"])  # type: ignore[list-item]
    assert kernels.held_sums([], None, ["ab", ""]) == [0.0, 0.0]
    assert kernels.held_sums(["a"], [2.0], []) == []
