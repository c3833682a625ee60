"""The engines the benchmark compares, each as build, open and top-k over one run's files.

Every engine indexes the same passages with the same word tokens: archive-bot builds its index
from the archive, then `prepare_tokens` reads the passages back from that index and tokenizes
`index_text(passage)` with the same `Tokenizer`, so rank-bm25 and bm25s get exactly the token
lists archive-bot's "words" field was built from. Queries are spans of passages, tokenized the
same way, stored once per run so every engine answers the same ones.

Libraries are imported inside each engine's functions, so a probe process holds only the
libraries of the engine it measures.
"""

from __future__ import annotations

import importlib
import json
import pickle
import random
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
BM25_K1, BM25_B = 1.5, 0.75  # rank-bm25's defaults, also archive-bot's


@dataclass(frozen=True, slots=True)
class RunPaths:
    """Where one size's archive and every engine's saved index live."""

    archive: Path
    run: Path

    @property
    def index_root(self) -> Path:
        """archive-bot's index folder (generations + CURRENT)."""
        return self.run / "archive-bot"

    @property
    def tokens(self) -> Path:
        """The shared word tokens of every passage, as arrays."""
        return self.run / "tokens"

    @property
    def bigrams(self) -> Path:
        """The shared bigram tokens of every passage (archive-bot's bigram keys, as text)."""
        return self.run / "bigrams"

    @property
    def queries(self) -> Path:
        """The questions every engine answers."""
        return self.run / "queries.json"

    def saved(self, engine: str) -> Path:
        """The file or folder an engine's saved index is in (archive-bot's: the whole index
        folder, its segments and the commit file that names them)."""
        if engine.startswith("archive-bot"):
            return self.index_root
        return self.run / ("rank-bm25.pkl" if engine == "rank-bm25" else engine)


@dataclass(frozen=True, slots=True)
class Query:
    """A question: its text (for the fused search), its word tokens (for the others) and its
    bigram tokens (archive-bot's bigram keys as text, for tantivy's second field)."""

    text: str
    tokens: list[str]
    bigrams: list[str] = field(default_factory=list)


TopK = tuple[np.ndarray, np.ndarray]  # passage ids and scores, best first
TopFn = Callable[[Query, int], TopK]


@dataclass(frozen=True, slots=True)
class Opened:
    """An opened index: its top-k function and what opening it involved.

    `prepare` turns a question into what `top` takes, before the clock starts (the identity
    for all but the engine that times retrieval from a worked-out `Query`).
    """

    top: TopFn
    notes: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[Query], Any] = lambda query: query


@dataclass(frozen=True, slots=True)
class Engine:
    """One engine: modules to import before timing, how to build it and how to open it."""

    name: str
    imports: tuple[str, ...]
    build: Callable[[RunPaths], dict[str, Any]] | None
    open: Callable[[RunPaths], Opened]

    def import_modules(self) -> None:
        """Import the engine's libraries, so that opening times only the index."""
        for module in self.imports:
            importlib.import_module(module)


# ---------------------------------------------------------------- top-k with ties by id


def dense_top(scores: np.ndarray, k: int) -> TopK:
    """The k best of a dense score array, best first, ties broken by lower id."""
    ids = np.arange(len(scores))
    return sparse_top(ids, scores, k)


def sparse_top(ids: np.ndarray, scores: np.ndarray, k: int) -> TopK:
    """The k best (id, score) pairs, best first, ties broken by lower id."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = np.flatnonzero(scores >= kth)
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].astype(np.int64), scores[order].astype(np.float64)


def field_top(field: Any, tokens: Sequence[str], k: int, buffer: np.ndarray) -> TopK:
    """Words-field top-k from archive-bot's postings (used while `Field.top` is missing)."""
    touched = []
    for term in field.term_ids(tokens):
        docs, weights = field.postings(term)
        buffer[docs] += weights
        touched.append(docs)
    if not touched:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    docs = np.unique(np.concatenate(touched))
    scores = buffer[docs]
    buffer[docs] = 0.0
    return sparse_top(docs.astype(np.int64), scores, k)


# ---------------------------------------------------------------- shared tokens and queries


def save_tokens(folder: Path, token_lists: Iterator[list[str]]) -> int:
    """Store token lists as vocabulary ids + offsets; returns the number of tokens."""
    vocab: dict[str, int] = {}
    ids = array("I")
    offsets = array("q", [0])
    for tokens in token_lists:
        ids.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
        offsets.append(len(ids))
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "ids.npy", np.frombuffer(ids, dtype=np.uint32))
    np.save(folder / "offsets.npy", np.frombuffer(offsets, dtype=np.int64))
    (folder / "vocab.json").write_text(json.dumps(list(vocab), ensure_ascii=False), "utf-8")
    return len(ids)


def load_token_ids(folder: Path) -> tuple[list[list[int]], list[str]]:
    """Token id lists of every passage, and the vocabulary they index."""
    ids = np.load(folder / "ids.npy")
    offsets = np.load(folder / "offsets.npy")
    vocab = json.loads((folder / "vocab.json").read_text("utf-8"))
    return [ids[a:b].tolist() for a, b in pairwise(offsets)], vocab


def iter_token_strings(folder: Path) -> Iterator[str]:
    """Each passage's tokens joined by spaces, one passage at a time (ids read from a mapping:
    a million passages' tokens as Python lists would take about 20 GB)."""
    ids = np.load(folder / "ids.npy", mmap_mode="r")
    offsets = np.load(folder / "offsets.npy")
    vocab = json.loads((folder / "vocab.json").read_text("utf-8"))
    for a, b in pairwise(offsets.tolist()):
        yield " ".join([vocab[i] for i in ids[a:b].tolist()])


def load_token_lists(folder: Path) -> list[list[str]]:
    """Token lists of every passage, strings shared through the vocabulary."""
    id_lists, vocab = load_token_ids(folder)
    return [[vocab[i] for i in ids] for ids in id_lists]


def draw_queries(
    passages: Any, tokens: Callable[[str], tuple[list[str], list[str]]], n: int, seed: int
) -> list[Query]:
    """`n` questions: spans of 4–30 characters of random passages that have word tokens."""
    rng = random.Random(seed)
    queries: list[Query] = []
    while len(queries) < n:
        text = passages[rng.randrange(len(passages))].text
        length = rng.randint(4, 30)
        start = rng.randrange(max(len(text) - length, 0) + 1)
        span = text[start : start + length]
        words, bigrams = tokens(span)
        if words:
            queries.append(Query(span, words, bigrams))
    return queries


def save_queries(path: Path, queries: list[Query]) -> None:
    """Write the questions as JSON."""
    data = [asdict(q) for q in queries]
    path.write_text(json.dumps(data, ensure_ascii=False, indent=0), "utf-8")


def load_queries(path: Path) -> list[Query]:
    """Read the questions written by `save_queries`."""
    return [Query(**q) for q in json.loads(path.read_text("utf-8"))]


def prepare_tokens(paths: RunPaths, n_queries: int, seed: int) -> dict[str, Any]:
    """Tokenize every passage of the built index for the peers, and draw the questions."""
    from retrieval.build import index_text
    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    index = open_index(paths.index_root)
    passages = index.passages

    def both(text: str) -> tuple[list[str], list[str]]:
        tokens = tokenizer.tokens(text)
        return tokens.words, [str(key) for key in tokens.bigrams.tolist()]

    started = time.perf_counter()
    texts = (index_text(passages[i]) for i in range(len(passages)))
    n_tokens = save_tokens(paths.tokens, (tokenizer.words(text) for text in texts))
    seconds = time.perf_counter() - started
    texts = (index_text(passages[i]) for i in range(len(passages)))
    save_tokens(paths.bigrams, (both(text)[1] for text in texts))  # tantivy's second field
    save_queries(paths.queries, draw_queries(passages, both, n_queries, seed))
    expected = index.manifest.tokens
    if expected != n_tokens:
        raise RuntimeError(f"re-tokenized {n_tokens:,} words, the index holds {expected:,}")
    return {"seconds": seconds, "passages": len(passages), "tokens": n_tokens}


# ---------------------------------------------------------------- archive-bot


def build_archive_bot(paths: RunPaths) -> dict[str, Any]:
    """Build archive-bot's index from the archive (the timed, whole pipeline)."""
    from retrieval.segments import build_index
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    started = time.perf_counter()
    stats = build_index(paths.archive, paths.index_root, tokenizer)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "passages": stats.passages, "tokens": stats.tokens}


def open_archive_bot(paths: RunPaths) -> Opened:
    """The words field alone, tokens in: the like-for-like peer of rank-bm25 and bm25s."""
    from retrieval.store import open_index

    words = open_index(paths.index_root).fields["words"]
    if hasattr(words, "gather"):
        return Opened(lambda q, k: words.top(words.gather(q.tokens), k), {"top": "Field.top"})
    buffer = np.zeros(words.size, dtype=np.float64)
    return Opened(lambda q, k: field_top(words, q.tokens, k, buffer), {"top": "bench helper"})


def open_archive_bot_fused(paths: RunPaths) -> Opened:
    """The bot's own search: question text in, words + bigrams fused, near-duplicates out."""
    searcher, notes = _searcher(paths)

    def top(query: Query, k: int) -> TopK:
        hits = searcher.search(query.text, top_k=k)
        return np.zeros(0, dtype=np.int64), np.array([hit.score for hit in hits])

    return Opened(top, notes)


def _searcher(paths: RunPaths, *, reader: bool = False) -> tuple[Any, dict[str, float]]:
    from retrieval.reader import Reader, Weights
    from retrieval.search import Searcher
    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    started = time.perf_counter()
    index = open_index(paths.index_root)
    opened = time.perf_counter()
    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    learned = Reader(Weights.load(), tokenizer) if reader else None  # as the bot's `Searcher`
    searcher = Searcher(index, tokenizer, reader=learned)
    return searcher, {
        "index_open_s": opened - started,
        "tokenizer_s": time.perf_counter() - opened,
    }


def open_archive_bot_fields(paths: RunPaths) -> Opened:
    """Retrieval alone, both fields fused, top-k: the question worked out before the clock
    (`Searcher.query`), as tantivy is given its tokens."""
    searcher, notes = _searcher(paths)

    def top(query: Any, k: int) -> TopK:
        hits = searcher.search(query, top_k=k)
        return np.zeros(0, dtype=np.int64), np.array([hit.score for hit in hits])

    return Opened(top, notes, prepare=lambda q: searcher.query(q.text))


def open_archive_bot_ask(paths: RunPaths) -> Opened:
    """The whole path a user waits for: question text → both fields → fused ranking → the
    learned reader (passages reordered, answer sentence, short answer) → snippets
    (`Searcher.ask`, as the bot opens it), with the reply's default of 3 passages."""
    searcher, notes = _searcher(paths, reader=True)

    def top(query: Query, k: int) -> TopK:
        result = searcher.ask(query.text, top_k=3)
        return np.zeros(0, dtype=np.int64), np.array([hit.score for hit in result.hits])

    return Opened(top, notes)


# ---------------------------------------------------------------- tantivy


def build_tantivy(paths: RunPaths) -> dict[str, Any]:
    """tantivy with two whitespace-tokenized fields over the shared words and bigram tokens
    (frequencies, no positions), one document per passage, merged as tantivy merges."""
    import tantivy

    schema = _tantivy_schema(tantivy)
    folder = paths.saved("tantivy")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    index = tantivy.Index(schema, path=str(folder))
    writer = index.writer(heap_size=256_000_000)
    for words, bigrams in zip(
        iter_token_strings(paths.tokens), iter_token_strings(paths.bigrams), strict=True
    ):
        writer.add_document(tantivy.Document(words=words, bigrams=bigrams))
    writer.commit()
    writer.wait_merging_threads()
    return {"seconds": time.perf_counter() - started}


def _tantivy_schema(tantivy: Any) -> Any:
    builder = tantivy.SchemaBuilder()
    for name in ("words", "bigrams"):
        builder.add_text_field(
            name, stored=False, tokenizer_name="whitespace", index_option="freq"
        )
    return builder.build()


def open_tantivy(paths: RunPaths) -> Opened:
    """Open the index; a question is a boolean OR of term queries over both fields, top-k."""
    import tantivy

    schema = _tantivy_schema(tantivy)
    index = tantivy.Index(schema, path=str(paths.saved("tantivy")))
    index.reload()
    searcher = index.searcher()
    should = tantivy.Occur.Should

    def top(query: Query, k: int) -> TopK:
        clauses = [
            (should, tantivy.Query.term_query(schema, name, token))
            for name, tokens in (("words", query.tokens), ("bigrams", query.bigrams))
            for token in tokens
        ]
        hits = searcher.search(tantivy.Query.boolean_query(clauses), k).hits
        ids = [address.doc for _, address in hits]
        return np.array(ids, dtype=np.int64), np.array([score for score, _ in hits])

    return Opened(top, {"segments": searcher.num_segments})


# ---------------------------------------------------------------- rank-bm25


def build_rank_bm25(paths: RunPaths) -> dict[str, Any]:
    """BM25Okapi over the shared token lists, pickled (it has no save/load of its own)."""
    from rank_bm25 import BM25Okapi

    token_lists = load_token_lists(paths.tokens)
    started = time.perf_counter()
    model = BM25Okapi(token_lists, k1=BM25_K1, b=BM25_B)
    seconds = time.perf_counter() - started
    del token_lists
    with open(paths.saved("rank-bm25"), "wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return {"seconds": seconds, "save_s": time.perf_counter() - started - seconds}


def open_rank_bm25(paths: RunPaths) -> Opened:
    """Unpickle BM25Okapi; top-k from its dense `get_scores`."""
    with open(paths.saved("rank-bm25"), "rb") as handle:
        model = pickle.load(handle)
    return Opened(lambda q, k: dense_top(model.get_scores(q.tokens), k))


# ---------------------------------------------------------------- bm25s


def numba_available() -> bool:
    """Whether bm25s can use its numba backend here."""
    try:
        importlib.import_module("numba")
    except ImportError:
        return False
    return True


def build_bm25s_default(paths: RunPaths) -> dict[str, Any]:
    """bm25s with every default (method "lucene", numpy backend), given token lists."""
    import bm25s

    token_lists = load_token_lists(paths.tokens)
    started = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(token_lists, show_progress=False)
    seconds = time.perf_counter() - started
    retriever.save(paths.saved("bm25s-default"), show_progress=False)
    return {"seconds": seconds, "save_s": time.perf_counter() - started - seconds}


def build_bm25s_best(paths: RunPaths) -> dict[str, Any]:
    """bm25s at its fastest: rank-bm25's k1, b and idf method, token ids in, numba if present."""
    import bm25s

    id_lists, vocab = load_token_ids(paths.tokens)
    backend = "numba" if numba_available() else "numpy"
    started = time.perf_counter()
    retriever = bm25s.BM25(method="robertson", k1=BM25_K1, b=BM25_B, backend=backend)
    tokenized = bm25s.tokenization.Tokenized(
        ids=id_lists, vocab={t: i for i, t in enumerate(vocab)}
    )
    retriever.index(tokenized, show_progress=False)
    seconds = time.perf_counter() - started
    retriever.save(paths.saved("bm25s-best"), show_progress=False)
    return {
        "seconds": seconds,
        "save_s": time.perf_counter() - started - seconds,
        "backend": backend,
    }


def _bm25s_top(retriever: Any) -> TopFn:
    def top(query: Query, k: int) -> TopK:
        docs, scores = retriever.retrieve([query.tokens], k=k, show_progress=False)
        return docs[0].astype(np.int64), scores[0].astype(np.float64)

    return top


def open_bm25s_default(paths: RunPaths) -> Opened:
    """`BM25.load` with its defaults (arrays read into memory)."""
    import bm25s

    return Opened(_bm25s_top(bm25s.BM25.load(paths.saved("bm25s-default"))))


def open_bm25s_best(paths: RunPaths) -> Opened:
    """`BM25.load(mmap=True)`: arrays memory-mapped, vocabulary read from JSON."""
    import bm25s

    retriever = bm25s.BM25.load(paths.saved("bm25s-best"), mmap=True)
    return Opened(_bm25s_top(retriever), {"backend": retriever.backend})


ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine("archive-bot", ("retrieval.store",), build_archive_bot, open_archive_bot),
        Engine(
            "archive-bot-fused",
            ("retrieval.store", "retrieval.search", "retrieval.tokenize"),
            None,
            open_archive_bot_fused,
        ),
        Engine(
            "archive-bot-fields",
            ("retrieval.store", "retrieval.search", "retrieval.tokenize"),
            None,
            open_archive_bot_fields,
        ),
        Engine(
            "archive-bot-ask",
            ("retrieval.store", "retrieval.search", "retrieval.tokenize", "retrieval.reader"),
            None,
            open_archive_bot_ask,
        ),
        Engine("rank-bm25", ("rank_bm25",), build_rank_bm25, open_rank_bm25),
        Engine("bm25s-default", ("bm25s",), build_bm25s_default, open_bm25s_default),
        Engine("bm25s-best", ("bm25s",), build_bm25s_best, open_bm25s_best),
        Engine("tantivy", ("tantivy",), build_tantivy, open_tantivy),
    )
}
PEERS = ("rank-bm25", "bm25s-default", "bm25s-best", "tantivy")
