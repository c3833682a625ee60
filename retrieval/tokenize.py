"""Pipeline step "passages → tokens": the one place that segments Chinese text.

Documents and queries go through the same `Tokenizer`: traditional characters are folded to
simplified (character by character, so offsets into the original text stay valid), Latin is
lowercased, text is cut into words by jieba's dictionary, and punctuation, whitespace and
stopwords never become tokens. A second field of character bigrams lets OCR-split or unknown
words still match.

Segmentation uses `rjieba` (jieba-rs, ~15 MB/s) with HMM off, which yields exactly the tokens of
`jieba.lcut(text, HMM=False)` ~12× faster; `reference_words` runs jieba itself so tests can hold
the fast path to that. A user dictionary reaches both segmenters with the same frequencies.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.chars import HAN_RANGES, code_points, is_han, nfkc

TOKENIZER_VERSION = 3


def _common_simplified() -> frozenset[str]:
    """GB2312's first level, the 3,755 most common simplified characters (rows 0xB0-0xD7).

    Decoded a row at a time (the last row has 89 characters, the others 94): asking each
    character's encoding instead took 5 ms of a fresh start.
    """
    cells, rows = bytes(range(0xA1, 0xFF)), []
    for row in range(0xB0, 0xD8):
        count = 89 if row == 0xD7 else 94
        pairs = bytearray(2 * count)
        pairs[0::2], pairs[1::2] = bytes([row]) * count, cells[:count]
        rows.append(pairs.decode("gb2312"))
    return frozenset("".join(rows))


@cache
def _t2s_table() -> dict[int, str]:
    """Traditional → simplified character table from OpenCC's dictionaries (first candidate)."""
    import opencc  # the package ships OpenCC's dictionary files; only its data is used

    folder = Path(opencc.__file__).parent / "dictionary"
    simplified = _common_simplified() | {
        line.partition("\t")[0]
        for line in (folder / "STCharacters.txt").read_text(encoding="utf-8").splitlines()
    }
    table: dict[int, str] = {}
    for name in ("TWVariantsRev.txt", "HKVariantsRev.txt", "TSCharacters.txt"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            source, _, targets = line.partition("\t")
            target = targets.split(" ")[0]
            # A character that simplified text itself uses is never folded: OpenCC maps
            # 么 → 幺, 著 → 着 and 抬 → 擡 too, which would cut 什么 and 著名 apart.
            if (
                len(source) == 1
                and len(target) == 1
                and source != target
                and source not in simplified
            ):
                table[ord(source)] = target
    # Variants first, then TS: a variant's standard form is itself traditional, fold it twice.
    return {key: table.get(ord(value), value) for key, value in table.items()}


@cache
def _folded_codes() -> np.ndarray:
    """The t2s table as an array: each code point's folded code point (itself if none)."""
    table = _t2s_table()
    codes = np.arange(max(table) + 1, dtype=np.uint32)
    codes[np.fromiter(table, dtype=np.int64)] = [ord(value) for value in table.values()]
    return codes


@cache
def _foldable_chars() -> frozenset[str]:
    """The characters the t2s table changes, as a set (for short text)."""
    return frozenset(map(chr, _t2s_table()))


_SET_CHARS = 128  # below this length a set is faster than numpy at "nothing to fold"


def fold(text: str) -> str:
    """Fold for matching: NFKC, traditional → simplified, lowercase; same length as NFKC text."""
    text = nfkc(text)
    if "…" in text:  # the one character cleaning keeps from NFKC; matching does not
        text = text.replace("…", "...")
    if len(text) < _SET_CHARS and _foldable_chars().isdisjoint(text):
        return text.lower()  # a sentence with nothing to fold (most): a set says so, no numpy
    # One character for one: looked up for all code points at once (str.translate with a
    # dict would look up every character in Python, ≈ 0.2 µs each).
    table = _folded_codes()
    codes = code_points(text)
    inside = codes < len(table)
    folded = np.where(inside, table[np.where(inside, codes, 0)], codes)
    if not np.array_equal(folded, codes):
        text = folded.astype(np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    return text.lower()


@dataclass(frozen=True, slots=True)
class TokenizerInfo:
    """What a tokenizer does, as a saved index records it: any change means a rebuild."""

    version: int
    segmenter: str  # segmenter and jieba versions
    fold: str
    dictionaries: str  # hash of the user dictionary and the stopwords


@dataclass(frozen=True, slots=True)
class UserWord:
    """One line of a jieba user dictionary: word, optional frequency, optional tag."""

    word: str
    freq: int | None
    tag: str | None


def read_userdict(path: Path) -> list[UserWord]:
    """Parse a jieba-format user dictionary ("word [freq] [tag]" a line, # comments)."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        freq = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        tag = parts[-1] if len(parts) > 1 and not parts[-1].isdigit() else None
        words.append(UserWord(fold(parts[0]), freq, tag))
    return words


def read_wordlist(path: Path) -> list[str]:
    """One entry a line, blank lines and # comments skipped (stopwords, synonyms)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@dataclass(frozen=True, slots=True)
class Tokens:
    """The two fields of one text: jieba words, and character-bigram keys (see `bigram_keys`).

    `bigram_text` is the folded text with stopwords blanked out, the bigrams' source.
    """

    words: list[str]
    bigrams: np.ndarray
    bigram_text: str


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """The tokens of many texts (`Tokenizer.batch_tokens`): flat arrays, text numbers beside.

    Word ids index `words`, numbered in the order the words first occur.
    """

    words: list[str]
    word_ids: np.ndarray  # uint32, every text's words in order
    word_texts: np.ndarray  # int64, which text each word is of
    word_lengths: np.ndarray  # words per text
    bigrams: np.ndarray  # uint32 keys, every text's in order
    bigram_texts: np.ndarray
    bigram_lengths: np.ndarray


_TEXT_END = "\x00"


def _fold_many(texts: Sequence[str]) -> list[str]:
    """`fold` of each text, folded in one call when no text holds the separator."""
    if not texts or any(_TEXT_END in text for text in texts):
        return [fold(text) for text in texts]
    folded = fold(_TEXT_END.join(texts)).split(_TEXT_END)
    return folded if len(folded) == len(texts) else [fold(text) for text in texts]


# Bigram keys: each CJK character gets a 15-bit index (the basic block, extension A and the
# compatibility block exactly; the rare later extensions folded into the remaining room), and a
# bigram is first * 2**15 + second, a 30-bit integer. No vocabulary is needed to index them.
_CJK_SLOTS = 1 << 15


def _cjk_index_table() -> np.ndarray:
    table = np.full(0x30000, -1, dtype=np.int32)  # plane 3 shares the last slot (clipped)
    base = 0
    for first, end in HAN_RANGES:
        end = min(end, len(table))
        room = _CJK_SLOTS - base
        table[first:end] = base + np.arange(end - first) % room
        base += min(end - first, room)
    return table


_CJK_INDEX = _cjk_index_table()


def bigram_keys(text: str) -> np.ndarray:
    """Keys of every pair of adjacent CJK characters in a text (uint32, in text order)."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    index = _CJK_INDEX[np.minimum(points, 0x2FFFF)]
    pairs = (index[:-1] >= 0) & (index[1:] >= 0)
    return (index[:-1][pairs].astype(np.uint32) << 15) | index[1:][pairs].astype(np.uint32)


def bigram_strings(text: str) -> set[str]:
    """The adjacent CJK character pairs of a text, as strings (for answer scoring)."""
    return {
        text[i : i + 2] for i in range(len(text) - 1) if is_han(text[i]) and is_han(text[i + 1])
    }


_WORD = re.compile(r"[^\W_]")


def _segmenter_class() -> Any:
    """rjieba's `Jieba` class, loaded without running `rjieba/__init__.py`.

    That `__init__` builds a default segmenter (≈ 0.1 s of dictionary loading) that this module
    never uses; a fresh `archive-bot ask` would pay for two. The extension is registered under
    its own name, so a later `import rjieba` finds it loaded instead of initialising it twice.
    """
    name = "rjieba.rjieba"
    if name in sys.modules:
        return sys.modules[name].Jieba
    package = importlib.util.find_spec("rjieba")
    locations = package.submodule_search_locations if package else None
    for folder in locations or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"rjieba{suffix}"
            if not path.is_file():
                continue
            loader = importlib.machinery.ExtensionFileLoader(name, str(path))
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            if spec is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            loader.exec_module(module)
            return module.Jieba
    import rjieba  # an unusual layout: the ordinary import

    return rjieba.Jieba


class Tokenizer:
    """Cuts folded text into word and bigram tokens, the same way for documents and queries."""

    def __init__(
        self, *, userdict: Iterable[UserWord] = (), stopwords: Iterable[str] = ()
    ) -> None:
        self._jieba = _segmenter_class()()
        self.userdict: tuple[UserWord, ...] = tuple(self._add_words(userdict))
        self.stopwords = frozenset(fold(word) for word in stopwords)

    def _add_words(self, words: Iterable[UserWord]) -> Iterator[UserWord]:
        # Resolve missing frequencies once, here, so jieba gets exactly what rjieba got.
        for entry in words:
            freq = entry.freq if entry.freq is not None else self._jieba.suggest_freq(entry.word)
            self._jieba.add_word(entry.word, freq, entry.tag)
            yield UserWord(entry.word, freq, entry.tag)

    @classmethod
    def from_config(cls, config_dir: Path) -> Tokenizer:
        """Build from `userdict.txt` and `stopwords.txt` in a config folder (both optional)."""
        userdict, stopwords = config_dir / "userdict.txt", config_dir / "stopwords.txt"
        return cls(
            userdict=read_userdict(userdict) if userdict.is_file() else (),
            stopwords=read_wordlist(stopwords) if stopwords.is_file() else (),
        )

    def segments(self, text: str) -> list[str]:
        """Raw jieba segments of folded text, punctuation included (equal to jieba HMM off)."""
        return self._jieba.cut(fold(text), False)

    def tokens(self, text: str) -> Tokens:
        """Word tokens and bigram keys of a text, stopwords and punctuation removed."""
        return self.folded_tokens(fold(text))

    def folded_tokens(self, folded: str) -> Tokens:
        """`tokens` of text that `fold` has already folded (a `Query` folds its text once)."""
        segments = self._jieba.cut(folded, False)
        stop = self.stopwords
        words = [seg for seg in segments if seg not in stop and _WORD.search(seg)]
        # Blank the stopwords out so that no bigram spans "多少" or joins across them.
        source = "".join(" " if seg in stop else seg for seg in segments)
        return Tokens(words, bigram_keys(source), source)

    def batch_tokens(self, texts: Sequence[str]) -> TokenBatch:
        """`tokens` of many texts at once, as arrays: what an index build counts into postings.

        Equal to calling `tokens` on each text (tests hold it to that), but every distinct
        segment is looked at once (stopword? has a letter or digit?) instead of once per
        occurrence, and the bigram keys of all texts come from one pass over their characters.
        """
        folded = _fold_many(texts)
        cut, stop = self._jieba.cut, self.stopwords
        segments: list[str] = []
        counts = np.zeros(len(folded), dtype=np.int64)
        for n, text in enumerate(folded):
            pieces = cut(text, False)
            pieces.append("\n")  # ends the text: not a word, not CJK, so no bigram spans two
            segments.extend(pieces)
            counts[n] = len(pieces)
        vocab = dict.fromkeys(segments)
        distinct = list(vocab)
        for number, segment in enumerate(distinct):
            vocab[segment] = number
        ids = np.fromiter(map(vocab.__getitem__, segments), dtype=np.int64, count=len(segments))
        blank = np.fromiter((s in stop for s in distinct), bool, len(distinct))
        is_word = np.fromiter(
            (not b and _WORD.search(s) is not None for s, b in zip(distinct, blank, strict=True)),
            bool,
            len(distinct),
        )
        text_of = np.repeat(np.arange(len(folded), dtype=np.int64), counts)
        # Words renumbered in the order they first occur (`distinct` is in that order already).
        kept = is_word[ids]
        word_texts = text_of[kept]
        renumber = np.cumsum(is_word) - 1
        # Bigrams: the characters of a stopword count as not CJK, so no bigram holds or spans one.
        lengths = np.fromiter(map(len, distinct), dtype=np.int64, count=len(distinct))[ids]
        points = np.frombuffer("".join(segments).encode("utf-32-le"), dtype=np.uint32)
        index = _CJK_INDEX[np.minimum(points, 0x2FFFF)]
        index[np.repeat(blank[ids], lengths)] = -1
        pairs = (index[:-1] >= 0) & (index[1:] >= 0)
        keys = (index[:-1][pairs].astype(np.uint32) << 15) | index[1:][pairs].astype(np.uint32)
        key_texts = np.repeat(text_of, lengths)[:-1][pairs]
        return TokenBatch(
            words=list(compress(distinct, is_word)),
            word_ids=renumber[ids[kept]].astype(np.uint32),
            word_texts=word_texts,
            word_lengths=np.bincount(word_texts, minlength=len(folded)),
            bigrams=keys,
            bigram_texts=key_texts,
            bigram_lengths=np.bincount(key_texts, minlength=len(folded)),
        )

    def tag(self, text: str) -> list[tuple[str, str]]:
        """Segments of folded text with jieba's part-of-speech tags (HMM on, so 刘曜 is one nr)."""
        return [(word, tag) for word, tag in self._jieba.tag(fold(text), True)]

    def words(self, text: str) -> list[str]:
        """Word tokens only."""
        segments = self.segments(text)
        return [seg for seg in segments if seg not in self.stopwords and _WORD.search(seg)]

    def describe(self) -> TokenizerInfo:
        """What the saved index records, so that a change of tokenizer forces a rebuild."""
        digest = hashlib.sha256()
        for entry in self.userdict:
            digest.update(f"{entry.word}\t{entry.freq}\n".encode())
        digest.update("\n".join(sorted(self.stopwords)).encode())
        return TokenizerInfo(
            version=TOKENIZER_VERSION,
            segmenter=f"rjieba {version('rjieba')} (HMM off, = jieba {version('jieba')})",
            fold="NFKC + OpenCC t2s characters + lowercase",
            dictionaries=digest.hexdigest()[:16],
        )

    def reference_words(self, text: str) -> list[str]:
        """Word tokens from jieba itself (slow): the oracle the fast path is tested against."""
        segments = _reference_jieba(self.userdict).lcut(fold(text), HMM=False)
        return [seg for seg in segments if seg not in self.stopwords and _WORD.search(seg)]


@cache
def _reference_jieba(userdict: tuple[UserWord, ...]) -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    reference = jieba.Tokenizer()
    reference.initialize()
    for entry in userdict:
        reference.add_word(entry.word, entry.freq, entry.tag)
    return reference
