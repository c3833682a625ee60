"""Pipeline steps "archive files → … → tokens → postings" for a whole archive, in parallel.

Files are cut into chunks of a few MB. Each chunk runs read → clean → articles → passages →
tokens in a worker process (both cores) and comes back as compact arrays: its passages' sources,
their word ids in a chunk-local vocabulary and their bigram keys, already counted into
(term, passage, frequency) postings. The parent process only renumbers those into the global
vocabulary, appends the passage texts to one file and spills the postings to `FieldBuilder`s,
so neither Python token lists nor the whole archive's text are ever held at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np

from retrieval.archive import Skipped, clean_text, read_document
from retrieval.articles import split_articles
from retrieval.dates import page_date
from retrieval.fieldbuild import count_pairs
from retrieval.listing import ArchiveFile
from retrieval.models import Passage
from retrieval.passages import split_passages
from retrieval.tokenize import Tokenizer, UserWord

CHUNK_BYTES = 4 << 20  # text per worker task
PARALLEL_BYTES = 16 << 20  # smaller archives are built in-process (no pool start-up)
Progress = Callable[[int], None]


def passages_of(
    paragraphs: list[str], path: str, *, max_chars: int, page: date | None = None
) -> list[Passage]:
    """Every passage of one file's cleaned paragraphs, each carrying the page's date."""
    passages = [
        passage
        for article in split_articles(paragraphs)
        for passage in split_passages(article, file=path, max_chars=max_chars)
    ]
    if page is None:
        return passages
    return [replace(p, source=replace(p.source, date=page)) for p in passages]


def index_text(passage: Passage) -> str:
    """What a passage is indexed by: its article's title carried with its text."""
    title = passage.source.title
    return f"{title}\n{passage.text}" if title else passage.text


@dataclass(slots=True)
class Chunk:
    """What a worker returns for a chunk of files: passages and counted postings."""

    passages: list[Passage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    documents: int = 0
    file_bytes: int = 0
    words: list[str] = field(default_factory=list)  # chunk-local vocabulary
    word_postings: tuple[np.ndarray, ...] = ()  # local term ids, local passage ids, tfs
    word_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    bigram_postings: tuple[np.ndarray, ...] = ()  # bigram keys, local passage ids, tfs
    bigram_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


_tokenizer: Tokenizer | None = None


def _init_worker(userdict: tuple[UserWord, ...], stopwords: frozenset[str]) -> None:
    global _tokenizer
    _tokenizer = Tokenizer(userdict=userdict, stopwords=stopwords)


def process_files(files: Sequence[ArchiveFile], max_chars: int) -> Chunk:
    """Read, clean, split and tokenize a chunk of files (runs in a worker process)."""
    tokenizer = _tokenizer
    if tokenizer is None:
        raise RuntimeError("worker tokenizer not initialised")
    chunk = Chunk()
    for file in files:
        chunk.file_bytes += file.size
        document = read_document(file.path, file.name)
        if isinstance(document, Skipped):
            chunk.skipped.append(document)
            continue
        chunk.documents += 1
        text = clean_text(document.text)
        # The raw text: cleaning may join a short masthead line to the headline under it.
        page = page_date(file.name, document.text)
        chunk.passages.extend(passages_of(text, file.name, max_chars=max_chars, page=page))
    _count_tokens(chunk, tokenizer)
    return chunk


def _count_tokens(chunk: Chunk, tokenizer: Tokenizer) -> None:
    batch = tokenizer.batch_tokens([index_text(passage) for passage in chunk.passages])
    chunk.words = batch.words
    chunk.word_lengths = batch.word_lengths
    chunk.word_postings = count_pairs(batch.word_ids, batch.word_texts.astype(np.uint64))
    chunk.bigram_lengths = batch.bigram_lengths
    chunk.bigram_postings = count_pairs(batch.bigrams, batch.bigram_texts.astype(np.uint64))


def chunked(
    files: Sequence[ArchiveFile], *, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[list[ArchiveFile]]:
    """An archive's listed files, in order, in chunks of about chunk_bytes."""
    batch: list[ArchiveFile] = []
    size = 0
    for file in files:
        batch.append(file)
        size += file.size
        if size >= chunk_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def chunks_of(
    files: Sequence[ArchiveFile],
    tokenizer: Tokenizer,
    *,
    max_chars: int,
    workers: int | None = None,
) -> Iterator[Chunk]:
    """Processed chunks of an archive's files, in order; in parallel when the archive is large."""
    total = sum(file.size for file in files)
    workers = workers or min(os.cpu_count() or 1, 4)
    args = (tokenizer.userdict, tokenizer.stopwords)
    if workers == 1 or total < PARALLEL_BYTES:
        _init_worker(*args)
        for batch in chunked(files):
            yield process_files(batch, max_chars)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=args) as pool:
        pending = []
        for batch in chunked(files):
            pending.append(pool.submit(process_files, batch, max_chars))
            if len(pending) > 2 * workers:  # bounded: results are large
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
