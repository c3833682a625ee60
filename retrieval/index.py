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
import threading
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval.errors import IndexCorruptError

FORMAT_VERSION = 1
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
        self._blob = blob
        self._offsets = offsets

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


class Field:
    """One BM25 field over all passages, scored from term-major postings."""

    def __init__(self, arrays: dict[str, np.ndarray], params: BM25Params) -> None:
        self.params = params
        self.hashes = arrays["hashes"]  # sorted uint64, one per term
        self.offsets = arrays["offsets"]  # int64, postings of term t: offsets[t]:offsets[t+1]
        self.docs = arrays["docs"]  # uint32 passage ids
        self.tfs = arrays["tfs"]  # term frequency in that passage
        self.idf = arrays["idf"]  # float64 per term, rank-bm25's rule
        self.norm = arrays["norm"]  # float64 per passage: k1 * (1 - b + b * len / avgdl)
        self.terms = StringTable(arrays["terms"], arrays["term_offsets"])
        self._scratch = threading.local()

    @property
    def size(self) -> int:
        """Number of passages."""
        return len(self.norm)

    def term_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of the tokens that are in the vocabulary (repeats kept, unknown dropped)."""
        if not tokens or not len(self.hashes):
            return []
        keys = np.array([term_hash(t) for t in tokens], dtype=np.uint64)
        where = np.searchsorted(self.hashes, keys).clip(max=len(self.hashes) - 1)
        return [
            int(i)
            for i, key, token in zip(where, keys, tokens, strict=True)
            if self.hashes[i] == key and self.terms[int(i)] == token
        ]

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """Passage ids and BM25 weights of one term."""
        start, end = self.offsets[term], self.offsets[term + 1]
        docs = self.docs[start:end]
        tf = self.tfs[start:end].astype(np.float64)
        k1 = self.params.k1
        return docs, self.idf[term] * (tf * (k1 + 1) / (tf + self.norm[docs]))

    def sparse_scores(self, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the passages the tokens occur in (ascending) and their BM25 scores."""
        terms = self.term_ids(tokens)
        if not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        buffer = self._buffer()
        touched = []
        for term in terms:
            docs, weights = self.postings(term)
            buffer[docs] += weights
            touched.append(docs)
        # Few postings: sort them; many: scanning the accumulator is cheaper than sorting.
        if sum(len(docs) for docs in touched) * 8 < self.size:
            docs = np.unique(np.concatenate(touched))
        else:
            docs = np.flatnonzero(buffer)
        scores = buffer[docs]
        buffer[docs] = 0.0
        return docs.astype(np.int64), scores

    def top(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best passage ids and their scores, best first (ties: lower id first)."""
        docs, scores = self.sparse_scores(tokens)
        best = top_k(scores, k)
        return docs[best], scores[best]

    def _buffer(self) -> np.ndarray:
        # One zeroed accumulator per thread, reused: allocating a dense array per query costs
        # more than scoring it. Searches run in worker threads, hence thread-local.
        buffer = getattr(self._scratch, "buffer", None)
        if buffer is None:
            buffer = self._scratch.buffer = np.zeros(self.size, dtype=np.float64)
        return buffer

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


def build_field(token_lists: Sequence[Sequence[str]], params: BM25Params) -> dict[str, np.ndarray]:
    """Arrays of a field over passages given as token lists (rank-bm25's input)."""
    vocab: dict[str, int] = {}
    term_of = array("I")
    lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64, count=len(token_lists))
    for tokens in token_lists:
        term_of.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
    terms = list(vocab)
    hashes = np.fromiter((term_hash(t) for t in terms), dtype=np.uint64, count=len(terms))
    order = np.argsort(hashes, kind="stable")
    if len(hashes) > 1 and np.any(hashes[order][1:] == hashes[order][:-1]):
        raise IndexCorruptError("Two terms share a 64-bit hash; report this as a bug.")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    doc_of = np.repeat(np.arange(len(token_lists), dtype=np.uint64), lengths)
    ranked = rank[np.frombuffer(term_of, dtype=np.uint32)].astype(np.uint64)
    keys, tfs = np.unique(ranked * np.uint64(len(token_lists)) + doc_of, return_counts=True)
    return _field_arrays(keys, tfs, lengths, [terms[i] for i in order], hashes[order], params)


def _field_arrays(
    keys: np.ndarray,
    tfs: np.ndarray,
    lengths: np.ndarray,
    terms: list[str],
    hashes: np.ndarray,
    params: BM25Params,
) -> dict[str, np.ndarray]:
    n = max(len(lengths), 1)
    term_of_posting = keys // np.uint64(n)
    offsets = np.searchsorted(term_of_posting, np.arange(len(terms) + 1, dtype=np.uint64))
    blob, term_offsets = StringTable.encode(terms)
    avgdl = float(lengths.sum()) / n if lengths.sum() else 1.0
    return {
        "hashes": hashes,
        "offsets": offsets.astype(np.int64),
        "docs": (keys % np.uint64(n)).astype(np.uint32),
        "tfs": tfs.astype(np.uint8 if tfs.max(initial=0) < 256 else np.uint32),
        "idf": okapi_idf(np.diff(offsets), len(lengths), params.epsilon),
        "norm": params.k1 * (1 - params.b + params.b * lengths / avgdl),
        "terms": blob,
        "term_offsets": term_offsets,
    }


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
        except (OSError, ValueError) as error:
            raise IndexCorruptError(
                f"Index file {path.name} is missing or damaged ({error}). "
                "Run `archive-bot index` to rebuild."
            ) from error
    return arrays


FIELD_ARRAYS = ("hashes", "offsets", "docs", "tfs", "idf", "norm", "terms", "term_offsets")


def open_field(folder: Path, name: str, params: BM25Params) -> Field:
    """Open a saved field, checking that its arrays agree with each other."""
    arrays = load_arrays(folder, name, FIELD_ARRAYS)
    n_terms = len(arrays["hashes"])
    consistent = (
        len(arrays["offsets"]) == n_terms + 1
        and len(arrays["idf"]) == n_terms
        and len(arrays["term_offsets"]) == n_terms + 1
        and len(arrays["docs"]) == len(arrays["tfs"])
        and (n_terms == 0 or int(arrays["offsets"][-1]) == len(arrays["docs"]))
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
    except (OSError, ValueError) as error:
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
