"""Characters, shared by every pipeline step: which are Han ideographs, and NFKC.

Cleaning (`archive`), tokens (`tokenize`: bigram keys, `fold`) and answers (`answer`) must agree
on what a Chinese character is and on how text is normalised, so both are defined here once:

    >>> is_han("桥"), is_han("〇"), is_han("a")
    (True, False, False)
    >>> nfkc("２０２３年…ＡＢ")
    '2023年…AB'
"""

from __future__ import annotations

import unicodedata
from functools import cache

import numpy as np

# Han ideographs, half-open code point ranges. The order is the order bigram keys number them
# in (`tokenize.bigram_keys`), so it must not change: saved indexes hold those numbers.
HAN_RANGES = (
    (0x4E00, 0xA000),  # CJK unified ideographs
    (0x3400, 0x4DC0),  # extension A
    (0xF900, 0xFB00),  # compatibility ideographs
    (0x20000, 0x40000),  # planes 2 and 3: extensions B to H
)
HAN_CLASS = "".join(f"{chr(first)}-{chr(end - 1)}" for first, end in HAN_RANGES)  # for regexes


def is_han(char: str) -> bool:
    """True for a Han ideograph (one of `HAN_RANGES`)."""
    code = ord(char)
    return any(first <= code < end for first, end in HAN_RANGES)


# Blocks where no character combines with its neighbours under NFC (no "maybe" in the Unicode
# quick check apart from combining marks, which the test below excludes): the fast path of
# `nfkc` only handles text made of these.
_SIMPLE_BLOCKS = (
    (0x0000, 0x0300),  # Latin, IPA, spacing modifiers
    (0x2000, 0x2C00),  # punctuation, symbols, arrows, boxes
    (0x3000, 0x3100),  # CJK punctuation, kana
    (0x3400, 0x4DC0),  # CJK extension A
    (0x4E00, 0xA000),  # CJK unified ideographs
    (0xFF00, 0xFFF0),  # full-width and half-width forms
)
_BULK_CHARS = 256  # shorter text goes straight to unicodedata: numpy's set-up costs more


@cache
def _nfkc_stable() -> np.ndarray:
    """Over the BMP, True for a character NFKC leaves as it is, whatever its neighbours."""
    mask = np.zeros(0x10000, dtype=bool)
    for first, last in _SIMPLE_BLOCKS:
        mask[first:last] = [
            unicodedata.combining(c) == 0 and unicodedata.normalize("NFKC", c) == c
            for c in map(chr, range(first, last))
        ]
    mask[ord("…")] = True  # kept: NFKC would make it "..."
    return mask


def code_points(text: str) -> np.ndarray:
    """The code points of a text (lone surrogates kept)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def nfkc(text: str) -> str:
    """NFKC, keeping "…" (NFKC would make it "...", which no longer reads as Chinese).

    Chinese text is mostly stable characters plus full-width ASCII and the ideographic space,
    whose NFKC forms are ASCII: in long text those are mapped in bulk, and only text with
    anything else goes through `unicodedata.normalize` (≈ 0.2 µs a character). Text that is
    NFKC already (most cleaned passages) is returned as it is after one quick check in C.
    """
    if unicodedata.is_normalized("NFKC", text):  # "…" is not: it takes the paths below
        return text
    if len(text) >= _BULK_CHARS:
        codes = code_points(text)
        wide = (codes >= 0xFF01) & (codes <= 0xFF5E)
        codes = np.where(wide, codes - 0xFEE0, codes).astype(np.uint32)
        codes[codes == 0x3000] = 0x20
        if codes.max() < 0x10000 and _nfkc_stable()[codes].all():
            return codes.tobytes().decode("utf-32-le")
    if "…" not in text:
        return unicodedata.normalize("NFKC", text)
    return "…".join(unicodedata.normalize("NFKC", part) for part in text.split("…"))
