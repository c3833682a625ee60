"""Pipeline step "tokens → BM25 index (saved)": build, save, open and score.

A field (words, bigrams) is stored term-major, as bm25s and Lucene do: for each term the ids
of the passages holding it and the term's frequency there. Scores are computed per query from
those postings and are exactly `rank_bm25.BM25Okapi`'s (same idf, same epsilon rule for
negative idf, same length normalisation), but touch only the passages a query's terms occur
in instead of looping over every passage.

On disk an index is a folder of `.npy` arrays plus `meta.json` that describes it (format
version, tokenizer, BM25 parameters, archive fingerprint, counts); arrays are opened with
`mmap_mode="r"` so opening is instant and memory is paged in on demand. Terms are found by a
64-bit hash in a sorted array, so no vocabulary dict is loaded either.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval import kernels
from retrieval.errors import IndexCorruptError

FORMAT_VERSION = 3
FIELDS = ("words", "bigrams")


@dataclass(frozen=True, slots=True)
class BM25Params:
    """Okapi BM25 parameters; defaults are rank-bm25's."""

    k1: float = 1.5
    b: float = 0.75
    epsilon: float = 0.25


def term_hash(term: str) -> int:
    """Stable 64-bit hash of a term: the key terms are found by in a saved field."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")


class StringTable:
    """Many strings as one UTF-8 blob plus offsets: compact, memory-mappable, O(1) access."""

    def __init__(self, blob: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> None:
        # Plain views: element access on a np.memmap goes through slow Python-level code.
        self._blob = np.asarray(blob).view(np.ndarray)
        self._offsets = np.asarray(offsets).view(np.ndarray)

    @staticmethod
    def encode(strings: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """The blob and offsets arrays for a list of strings."""
        encoded = [s.encode() for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i: int) -> str:
        start, end = self._offsets[i], self._offsets[i + 1]
        return self._blob[start:end].tobytes().decode()


class NpyColumn:
    """A 1-D `.npy` array read by slices with `os.pread`.

    Postings are read, not memory-mapped: a mapping's touched pages count towards the process's
    resident memory and stay there, while read pages live in the OS cache, shared and evictable.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            header = np.lib.format
            read = header.read_array_header_1_0 if major == 1 else header.read_array_header_2_0
            shape, _, dtype = read(handle)
            self.offset = handle.tell()
        if len(shape) != 1 or path.stat().st_size != self.offset + shape[0] * dtype.itemsize:
            raise ValueError(f"{path.name} is truncated")
        self.dtype, self.length = dtype, shape[0]
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, where: slice) -> np.ndarray:
        start, stop, _ = where.indices(self.length)
        out = np.empty(stop - start, dtype=self.dtype)
        self.read_into(start, out)
        return out

    def read_into(self, start: int, out: np.ndarray) -> None:
        """Read `len(out)` items from `start` straight into `out` (no intermediate copy)."""
        buffer, at = out.view(np.uint8).data, self.offset + start * self.dtype.itemsize
        done = os.preadv(self._fd, [buffer], at)
        while 0 < done < len(buffer):  # a short read (signals, huge ranges): read the rest
            more = os.preadv(self._fd, [buffer[done:]], at + done)
            if more <= 0:
                break
            done += more
        if done != len(buffer):
            raise OSError(f"index file ended early: read {done} of {len(buffer)} bytes")


WORD_IDS_KEPT = 200_000  # words whose term ids a field remembers (a few MB)


class Field:
    """One BM25 field over all passages, scored from term-major postings.

    A term is found by its key: for words a 64-bit hash of the word (checked against the stored
    word), for character bigrams the bigram key itself. Keys are stored sorted; term t's
    postings are `docs[offsets[t]:offsets[t + 1]]` with their frequencies in `tfs`.
    """

    def __init__(self, arrays: dict[str, Any], params: BM25Params) -> None:
        self.params = params
        # Small arrays as plain views: indexing a np.memmap element by element is slow.
        self.keys = np.asarray(arrays["keys"]).view(np.ndarray)  # sorted uint64, one per term
        self.offsets = np.asarray(arrays["offsets"]).view(np.ndarray)  # int64, n_terms + 1
        self.docs = arrays["docs"]  # uint32 passage ids (array or NpyColumn)
        self.tfs = arrays["tfs"]  # uint8 term frequency in that passage
        self.idf = np.asarray(arrays["idf"]).view(np.ndarray)  # float64 per term, rank-bm25's
        self.norm = np.asarray(arrays["norm"]).view(np.ndarray)  # k1 * (1 - b + b * len / avgdl)
        self.upper = np.asarray(arrays["upper"]).view(np.ndarray)  # a term's highest weight
        has_words = len(arrays["term_offsets"]) > 1
        self.words = StringTable(arrays["terms"], arrays["term_offsets"]) if has_words else None
        self._scratch = threading.local()
        self._word_ids: dict[str, int] = {}  # word → term id (-1: not in the vocabulary)

    @property
    def size(self) -> int:
        """Number of passages."""
        return len(self.norm)

    def term_ids(self, tokens: Sequence[str] | np.ndarray) -> list[int]:
        """Ids of the tokens that are in the vocabulary (repeats kept, unknown dropped)."""
        if not len(tokens) or not len(self.keys):
            return []
        if isinstance(tokens, np.ndarray):  # bigram keys: the key is the term
            keys = tokens.astype(np.uint64)
            where = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
            return [int(i) for i in where[self.keys[where] == keys]]
        # Words: hashed, found by binary search, checked against the stored word (a 64-bit hash
        # can collide). Questions repeat words, so each word's id (or -1) is remembered.
        if len(self._word_ids) > WORD_IDS_KEPT:
            self._word_ids = {}
        known = self._word_ids
        new = [t for t in dict.fromkeys(tokens) if t not in known]
        if new:
            keys = np.array([term_hash(t) for t in new], dtype=np.uint64)
            where = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
            for token, i, key in zip(new, where.tolist(), keys.tolist(), strict=True):
                hit = int(self.keys[i]) == key and (self.words is None or self.words[i] == token)
                known[token] = i if hit else -1
        return [i for i in map(known.__getitem__, tokens) if i >= 0]

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Passage ids and BM25 weights of one term."""
        start, end = int(self.offsets[term]), int(self.offsets[term + 1])
        docs = self.docs[start:end]
        tf = self.tfs[start:end].astype(np.float64)
        k1 = self.params.k1
        return docs, self.idf[term] * (tf * (k1 + 1) / (tf + self.norm[docs]))

    def top(self, tokens: Sequence[str] | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best passage ids and their scores, best first (ties: lower id first)."""
        terms = self.term_ids(tokens)
        if not terms or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        terms.sort(key=lambda t: -self.upper[t])  # MaxScore wants the strongest terms first
        docs, tfs, bounds = self._gather(terms)
        upper = self.upper[terms]
        if np.any(self.idf[terms] < 0):  # negative weights: partial scores bound nothing
            upper = np.full(len(terms), np.inf)
        scores, seen = self._scratch_arrays()
        idf, norm, k1 = self.idf[terms], self.norm, self.params.k1
        return kernels.top_k(docs, tfs, bounds, idf, upper, norm, k1, k, scores, seen)

    def scores_for(self, tokens: Sequence[str] | np.ndarray, passages: np.ndarray) -> np.ndarray:
        """Exact scores of the given passages (0 where no token occurs)."""
        terms = self.term_ids(tokens)
        if not terms or not len(passages):
            return np.zeros(len(passages))
        docs, tfs, bounds = self._gather(terms)
        targets = np.asarray(passages, dtype=np.int64)
        return kernels.scores_of(
            docs, tfs, bounds, self.idf[terms], self.norm, self.params.k1, targets
        )

    def _gather(self, terms: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The terms' postings one after the other, and where each term's begin and end."""
        starts = self.offsets[terms]
        bounds = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(self.offsets[np.asarray(terms) + 1] - starts, out=bounds[1:])
        docs = np.empty(bounds[-1], dtype=np.uint32)
        tfs = np.empty(bounds[-1], dtype=np.uint8)
        read = isinstance(self.docs, NpyColumn) and isinstance(self.tfs, NpyColumn)
        for i, start in enumerate(starts.tolist()):
            begin, end = bounds[i], bounds[i + 1]
            if read:
                self.docs.read_into(start, docs[begin:end])
                self.tfs.read_into(start, tfs[begin:end])
            else:  # arrays in memory (a field built in a test)
                docs[begin:end] = self.docs[start : start + end - begin]
                tfs[begin:end] = self.tfs[start : start + end - begin]
        return docs, tfs, bounds

    def _scratch_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        # A zeroed accumulator and a cleared "seen" mask per thread, reused: allocating dense
        # arrays per query costs more than scoring it. Searches run in worker threads.
        arrays = getattr(self._scratch, "arrays", None)
        if arrays is None:
            size = self.size
            arrays = self._scratch.arrays = (np.zeros(size), np.zeros(size, dtype=bool))
        return arrays

    def get_scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Dense scores of every passage (like rank-bm25's `get_scores`; for tests and tools)."""
        scores = np.zeros(self.size, dtype=np.float64)
        for term in self.term_ids(tokens):
            docs, weights = self.postings(term)
            scores[docs] += weights
        return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first (ties: lower index first)."""
    part = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


# A posting is packed into 64 bits while building: term (30) | passage (26) | frequency (8).
# Sorting the packed integers orders postings by term, then passage, in place and in one array.
TERM_SHIFT, DOC_SHIFT = 34, 8
TERM_BITS = 64 - TERM_SHIFT  # a term id or bigram key has 30 bits
SORT_BUCKETS = 64  # a field's postings are sorted in this many term ranges (a power of two)
DOC_MASK, TF_MAX = (1 << 26) - 1, 255
MAX_PASSAGES = DOC_MASK + 1


def count_pairs(terms: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (term, passage) pairs of token occurrences and how often each occurs."""
    keys, tfs = np.unique(terms.astype(np.uint64) << np.uint64(32) | docs, return_counts=True)
    return keys >> np.uint64(32), keys & np.uint64(0xFFFFFFFF), tfs


class FieldBuilder:
    """Collects a field's postings chunk by chunk in a spill file, then sorts them into arrays.

    Memory stays at about 13 bytes a posting at the end (the packed pairs plus the output), not
    the size of Python token lists. A frequency above 255 in one passage counts as 255.
    """

    def __init__(self, spill: Path) -> None:
        self._spill_path = spill
        self._spill = open(spill, "wb")  # noqa: SIM115 - closed in finish()
        self._lengths: list[np.ndarray] = []

    def add(
        self, terms: np.ndarray, docs: np.ndarray, tfs: np.ndarray, lengths: np.ndarray
    ) -> None:
        """Add postings (global term ids or keys, global passage ids) and passage lengths."""
        if len(docs) and int(docs.max()) > DOC_MASK:
            raise ValueError(f"more than {MAX_PASSAGES} passages in one index")
        packed = (
            terms.astype(np.uint64) << np.uint64(TERM_SHIFT)
            | docs.astype(np.uint64) << np.uint64(DOC_SHIFT)
            | np.minimum(tfs, TF_MAX).astype(np.uint64)
        )
        packed.tofile(self._spill)
        self._lengths.append(np.asarray(lengths, dtype=np.int64))

    @property
    def tokens(self) -> int:
        """Tokens added so far (the sum of passage lengths)."""
        return int(sum(int(lengths.sum()) for lengths in self._lengths))

    def finish(self, params: BM25Params, words: Sequence[str] | None = None) -> dict[str, Any]:
        """The field's arrays; `words` (by id) for a word field, None for a keyed field.

        The spill is sorted bucket by bucket (terms split into `SORT_BUCKETS` ranges, each
        sorted alone), so memory peaks at the output (5 bytes a posting) plus one bucket, not
        at all the packed postings at once.
        """
        self._spill.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        if words is None:
            rank, keys, ordered = None, None, []
            bucket_bits = TERM_BITS - (SORT_BUCKETS - 1).bit_length()
            bucket_of = lambda terms: terms >> np.uint64(bucket_bits)  # noqa: E731
        else:
            keys, order = _hash_order(words)
            rank = np.empty(len(order), dtype=np.uint64)
            rank[order] = np.arange(len(order), dtype=np.uint64)
            ordered = [words[i] for i in order]
            per_bucket = max(1, -(-len(order) // SORT_BUCKETS))
            bucket_of = lambda terms: terms // np.uint64(per_bucket)  # noqa: E731
        buckets = _spill_buckets(self._spill_path, rank, bucket_of)
        self._spill_path.unlink()
        total = sum(path.stat().st_size for path in buckets) // 8
        docs = np.empty(total, dtype=np.uint32)
        tfs = np.empty(total, dtype=np.uint8)
        terms, starts, done = [], [], 0
        for path in buckets:
            packed = np.fromfile(path, dtype=np.uint64)
            path.unlink()
            packed.sort()
            term_of = packed >> np.uint64(TERM_SHIFT)
            first = np.flatnonzero(np.concatenate([[True], term_of[1:] != term_of[:-1]]))
            terms.append(term_of[first])  # sorted already: where the term changes
            starts.append(first + done)
            del term_of
            docs[done : done + len(packed)] = packed >> np.uint64(DOC_SHIFT) & np.uint64(DOC_MASK)
            tfs[done : done + len(packed)] = packed & np.uint64(TF_MAX)
            done += len(packed)
            del packed
        term_ids = np.concatenate(terms) if terms else np.zeros(0, dtype=np.uint64)
        offsets = np.append(np.concatenate(starts) if starts else [], total).astype(np.int64)
        if keys is None:
            keys = term_ids
        elif len(term_ids) != len(keys):
            raise ValueError("a word of the vocabulary has no postings")
        return _field_arrays(docs, tfs, keys, offsets, lengths, params, ordered)


def _spill_buckets(
    spill: Path, rank: np.ndarray | None, bucket_of: Callable[[np.ndarray], np.ndarray]
) -> list[Path]:
    """Split a spill file into bucket files by term range, in term order; word ids replaced by
    their rank (`rank`) on the way."""
    files: dict[int, Any] = {}
    shift, low = np.uint64(TERM_SHIFT), np.uint64((1 << TERM_SHIFT) - 1)
    try:
        with open(spill, "rb") as source:
            while True:
                part = np.fromfile(source, dtype=np.uint64, count=1 << 22)
                if not len(part):
                    break
                terms = part >> shift
                if rank is not None:
                    terms = rank[terms]
                    part = terms << shift | part & low
                bucket = bucket_of(terms)
                order = np.argsort(bucket, kind="stable")
                part, bucket = part[order], bucket[order]
                cuts = np.flatnonzero(np.diff(bucket)) + 1
                numbers = bucket[np.concatenate([[0], cuts])].tolist()
                for number, piece in zip(numbers, np.split(part, cuts), strict=True):
                    if number not in files:
                        files[number] = open(spill.with_suffix(f".{number:04d}"), "wb")  # noqa: SIM115
                    piece.tofile(files[number])
    finally:
        for handle in files.values():
            handle.close()
    return [spill.with_suffix(f".{number:04d}") for number in sorted(files)]


def _hash_order(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The words' hashes in ascending order, and the word ids in that order."""
    hashes = np.fromiter((term_hash(w) for w in words), dtype=np.uint64, count=len(words))
    order = np.argsort(hashes, kind="stable")
    if len(order) > 1 and np.any(hashes[order][1:] == hashes[order][:-1]):
        raise ValueError("two words share a 64-bit hash")
    return hashes[order], order


def _field_arrays(
    docs: np.ndarray,
    tfs: np.ndarray,
    keys: np.ndarray,
    offsets: np.ndarray,
    lengths: np.ndarray,
    params: BM25Params,
    words: list[str],
) -> dict[str, Any]:
    n_docs = len(lengths)
    blob, term_offsets = StringTable.encode(words)
    total = float(lengths.sum())
    avgdl = total / n_docs if n_docs and total else 1.0
    idf = okapi_idf(np.diff(offsets), n_docs, params.epsilon)
    norm = params.k1 * (1 - params.b + params.b * lengths / avgdl)
    return {
        "keys": np.asarray(keys, dtype=np.uint64),
        "offsets": offsets,
        "docs": docs,
        "tfs": tfs,
        "idf": idf,
        "norm": norm,
        "upper": _upper_bounds(docs, tfs, offsets, idf, norm, params.k1),
        "terms": blob,
        "term_offsets": term_offsets,
    }


def _upper_bounds(
    docs: np.ndarray,
    tfs: np.ndarray,
    offsets: np.ndarray,
    idf: np.ndarray,
    norm: np.ndarray,
    k1: float,
) -> np.ndarray:
    """Each term's highest BM25 weight in any passage (what MaxScore prunes with)."""
    best = np.zeros(len(offsets) - 1)
    starts = offsets[:-1]
    for first in range(0, len(docs), 1 << 24):
        last = min(first + (1 << 24), len(docs))
        tf = tfs[first:last].astype(np.float64)
        ratio = tf * (k1 + 1) / (tf + norm[docs[first:last]])
        # Each term's part of this slice: reduce by term starts that fall inside it.
        inside = np.flatnonzero((starts < last) & (offsets[1:] > first))
        cuts = np.maximum(starts[inside], first) - first
        best[inside] = np.maximum(best[inside], np.maximum.reduceat(ratio, cuts))
    # rank-bm25 allows idf <= 0 (epsilon rule); the highest weight is then at the lowest ratio,
    # which is never below 0 — bound it by 0 so pruning stays safe.
    return np.where(idf > 0, idf * best, 0.0)


def build_field(token_lists: Sequence[Sequence[str]], params: BM25Params) -> dict[str, Any]:
    """Arrays of a word field over passages given as token lists (rank-bm25's input)."""
    vocab: dict[str, int] = {}
    ids = [
        np.array([vocab.setdefault(t, len(vocab)) for t in tokens], dtype=np.uint64)
        for tokens in token_lists
    ]
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    docs = np.repeat(np.arange(len(token_lists), dtype=np.uint64), lengths)
    terms = np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint64)
    with tempfile.TemporaryDirectory() as folder:
        builder = FieldBuilder(Path(folder) / "spill")
        builder.add(*count_pairs(terms, docs), lengths)
        return builder.finish(params, list(vocab))


def okapi_idf(df: np.ndarray, n_docs: int, epsilon: float) -> np.ndarray:
    """rank-bm25's Okapi idf: log((N - n + 0.5) / (n + 0.5)), negatives → epsilon × mean idf."""
    idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
    if len(idf):
        idf[idf < 0] = epsilon * (idf.sum() / len(idf))
    return idf


def save_arrays(folder: Path, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    """Write each array as `<prefix>.<name>.npy`."""
    for name, values in arrays.items():
        np.save(folder / f"{prefix}.{name}.npy", np.ascontiguousarray(values))


def load_arrays(folder: Path, prefix: str, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Memory-map `<prefix>.<name>.npy` arrays; a missing or damaged one is IndexCorruptError."""
    arrays = {}
    for name in names:
        path = folder / f"{prefix}.{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise IndexCorruptError(
                f"Index file {path.name} is missing or damaged ({error}). "
                "Run `archive-bot index` to rebuild."
            ) from error
    return arrays


_MAPPED = ("keys", "offsets", "idf", "norm", "upper", "terms", "term_offsets")


def open_field(folder: Path, name: str, params: BM25Params) -> Field:
    """Open a saved field, checking that its arrays agree with each other."""
    arrays: dict[str, Any] = load_arrays(folder, name, _MAPPED)
    try:
        arrays["docs"] = NpyColumn(folder / f"{name}.docs.npy")
        arrays["tfs"] = NpyColumn(folder / f"{name}.tfs.npy")
    except (OSError, ValueError, EOFError) as error:
        raise IndexCorruptError(
            f"Index field {name!r} is damaged ({error}). Run `archive-bot index` to rebuild."
        ) from error
    n_terms = len(arrays["keys"])
    consistent = (
        len(arrays["offsets"]) == n_terms + 1
        and len(arrays["idf"]) == n_terms
        and len(arrays["docs"]) == len(arrays["tfs"])
        and int(arrays["offsets"][-1]) == len(arrays["docs"])
        and len(arrays["term_offsets"]) in (1, n_terms + 1)
    )
    if not consistent:
        raise IndexCorruptError(
            f"Index field {name!r} is inconsistent. Run `archive-bot index` to rebuild."
        )
    return Field(arrays, params)


def write_meta(folder: Path, meta: dict[str, object]) -> None:
    """Write `meta.json` (last, so a folder with meta.json is complete)."""
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), "utf-8")


def read_meta(folder: Path) -> dict[str, object]:
    """Read and check `meta.json`; anything unreadable or of another format version is corrupt."""
    try:
        meta = json.loads((folder / "meta.json").read_text("utf-8"))
    except (OSError, ValueError, EOFError) as error:
        raise IndexCorruptError(
            f"Index metadata is unreadable ({error}). Run `archive-bot index` to rebuild."
        ) from error
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        found = meta.get("format_version") if isinstance(meta, dict) else None
        raise IndexCorruptError(
            f"Index format {found} is not the supported {FORMAT_VERSION}. "
            "Run `archive-bot index` to rebuild."
        )
    return meta


def params_from_meta(meta: dict[str, object]) -> BM25Params:
    """BM25 parameters recorded in `meta.json`."""
    try:
        return BM25Params(**meta["bm25"])  # type: ignore[arg-type]
    except (KeyError, TypeError) as error:
        raise IndexCorruptError("Index metadata lacks BM25 parameters; rebuild it.") from error


def params_to_meta(params: BM25Params) -> dict[str, float]:
    """BM25 parameters as stored in `meta.json`."""
    return asdict(params)
