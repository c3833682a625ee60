"""Pipeline step "archive → saved index": runs read → clean → articles → passages → tokens →
BM25 for a whole archive, writes it atomically, and opens it again.

An index folder holds generations: `CURRENT` names the complete one, each generation is a
folder written in full (meta.json last) before `CURRENT` is switched with an atomic rename. A
build killed at any point leaves the previous generation in use; two builders take a file lock
so they never write at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from filelock import FileLock

from retrieval.archive import clean_text, read_archive
from retrieval.articles import split_articles
from retrieval.errors import ArchiveError, IndexCorruptError, IndexMissingError
from retrieval.index import (
    FIELDS,
    FORMAT_VERSION,
    BM25Params,
    Field,
    StringTable,
    build_field,
    load_arrays,
    open_field,
    params_from_meta,
    params_to_meta,
    read_meta,
    save_arrays,
    write_meta,
)
from retrieval.models import Document, Passage, Source
from retrieval.passages import DEFAULT_MAX_CHARS, split_passages
from retrieval.tokenize import Tokenizer

log = logging.getLogger(__name__)

# Columns of the per-passage table: ids into files/titles, then positions in the source.
_COLUMNS = ("file", "title", "article", "number", "paragraph", "start", "end")
Progress = Callable[[int], None]


def fingerprint(archive_dir: Path) -> str:
    """Fingerprint of an archive: every .txt file's relative path, size and modification time."""
    digest = hashlib.sha256()
    for path in sorted(archive_dir.rglob("*.txt")):
        try:
            stat = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(archive_dir).as_posix()}\0{stat.st_size}\0".encode())
        digest.update(f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What a build made, for `archive-bot index` to print."""

    files: int
    skipped: tuple[str, ...]
    articles: int
    passages: int
    tokens: int
    seconds: float


def passages_of(document: Document, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Passage]:
    """Every passage of one decoded archive file."""
    paragraphs = clean_text(document.text)
    return [
        passage
        for article in split_articles(paragraphs)
        for passage in split_passages(article, file=document.path, max_chars=max_chars)
    ]


def index_text(passage: Passage) -> str:
    """What a passage is indexed by: its article's title carried with its text."""
    title = passage.source.title
    return f"{title}\n{passage.text}" if title else passage.text


def _id_parts(passage_id: str) -> tuple[str, int, int]:
    """File, article number and passage number of a passage id "<file>#<article>.<n>"."""
    file, _, rest = passage_id.rpartition("#")
    article, _, number = rest.partition(".")
    return file, int(article), int(number)


class PassageTable:
    """Per-passage texts and sources, memory-mapped."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._texts = StringTable(arrays["text"], arrays["text_offsets"])
        self._files = StringTable(arrays["files"], arrays["file_offsets"])
        self._titles = StringTable(arrays["titles"], arrays["title_offsets"])
        self._rows = arrays["rows"]

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> Passage:
        file, title, article, number, paragraph, start, end = (int(v) for v in self._rows[i])
        path = self._files[file]
        return Passage(
            passage_id=f"{path}#{article}.{number}",
            text=self._texts[i],
            source=Source(path, self._titles[title - 1] if title else None, paragraph, start, end),
        )

    @staticmethod
    def arrays(passages: list[Passage]) -> dict[str, np.ndarray]:
        """The arrays of a table of passages."""
        files = {p.source.file: None for p in passages}
        titles = {p.source.title: None for p in passages if p.source.title}
        file_id = {name: i for i, name in enumerate(files)}
        title_id = {name: i + 1 for i, name in enumerate(titles)}  # 0 means no title
        rows = np.array(
            [
                (
                    file_id[p.source.file],
                    title_id.get(p.source.title or "", 0),
                    *_id_parts(p.passage_id)[1:],
                    p.source.paragraph,
                    p.source.start,
                    p.source.end,
                )
                for p in passages
            ],
            dtype=np.uint32,
        ).reshape(-1, len(_COLUMNS))
        out = {"rows": rows}
        for name, strings in (("text", [p.text for p in passages]), ("files", list(files))):
            out[name], out[f"{name.rstrip('s')}_offsets"] = StringTable.encode(strings)
        out["titles"], out["title_offsets"] = StringTable.encode(list(titles))
        return out


_TABLE_ARRAYS = ("rows", "text", "text_offsets", "files", "file_offsets", "titles")


class Index:
    """An opened index: its description, its fields and its passages."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = read_meta(folder)
        params = params_from_meta(self.meta)
        self.fields: dict[str, Field] = {name: open_field(folder, name, params) for name in FIELDS}
        table = load_arrays(folder, "passages", (*_TABLE_ARRAYS, "title_offsets"))
        self.passages = PassageTable(table)
        if any(field.size != len(self.passages) for field in self.fields.values()):
            raise IndexCorruptError("Index fields and passages disagree; rebuild the index.")

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the archive this index was built from."""
        return str(self.meta.get("fingerprint", ""))


def current_generation(index_root: Path) -> Path:
    """The complete generation folder `CURRENT` points to; IndexMissingError if none."""
    try:
        name = (index_root / "CURRENT").read_text("utf-8").strip()
    except FileNotFoundError as error:
        raise IndexMissingError(
            f"No index at {index_root}. Run `archive-bot index` to build it."
        ) from error
    if not name or "/" in name or not (index_root / name).is_dir():
        raise IndexCorruptError(f"Index at {index_root} points to a missing generation; rebuild.")
    return index_root / name


def open_index(index_root: Path) -> Index:
    """Open the current generation of an index folder."""
    return Index(current_generation(index_root))


def build_index(
    archive_dir: Path,
    index_root: Path,
    tokenizer: Tokenizer,
    *,
    params: BM25Params | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress: Progress | None = None,
) -> BuildStats:
    """Build the index of an archive into a new generation and make it current."""
    index_root.mkdir(parents=True, exist_ok=True)
    with FileLock(index_root / "build.lock"):
        started = time.perf_counter()
        generation = index_root / f"gen-{time.time_ns()}-{os.getpid()}"
        generation.mkdir()
        try:
            stats = _write_generation(
                archive_dir, generation, tokenizer, params or BM25Params(), max_chars, progress
            )
        except BaseException:
            shutil.rmtree(generation, ignore_errors=True)
            raise
        _switch_current(index_root, generation)
    return replace(stats, seconds=time.perf_counter() - started)


def _read_passages(
    archive_dir: Path, max_chars: int, progress: Progress | None
) -> tuple[list[Passage], BuildStats]:
    documents, skipped = read_archive(archive_dir)
    for item in skipped:
        log.warning("skipped %s: %s", item.path, item.reason)
    passages: list[Passage] = []
    for document in documents:
        passages.extend(passages_of(document, max_chars=max_chars))
        if progress:
            progress(len(document.text.encode()))
    if not passages:
        raise ArchiveError(f"No text to index in {archive_dir}. Check ARCHIVE_BOT_ARCHIVE_DIR.")
    n_articles = len({_id_parts(p.passage_id)[:2] for p in passages})
    skipped_names = tuple(item.path for item in skipped)
    stats = BuildStats(len(documents), skipped_names, n_articles, len(passages), 0, 0.0)
    return passages, stats


def _write_generation(
    archive_dir: Path,
    folder: Path,
    tokenizer: Tokenizer,
    params: BM25Params,
    max_chars: int,
    progress: Progress | None,
) -> BuildStats:
    passages, stats = _read_passages(archive_dir, max_chars, progress)
    tokens = [tokenizer.tokens(index_text(p)) for p in passages]
    save_arrays(folder, "passages", PassageTable.arrays(passages))
    for name in FIELDS:
        save_arrays(folder, name, build_field([getattr(t, name) for t in tokens], params))
    n_tokens = sum(len(t.words) for t in tokens)
    write_meta(
        folder,
        {
            "format_version": FORMAT_VERSION,
            "archive": str(archive_dir.resolve()),
            "fingerprint": fingerprint(archive_dir),
            "tokenizer": tokenizer.describe(),
            "bm25": params_to_meta(params),
            "max_chars": max_chars,
            "files": stats.files,
            "skipped": list(stats.skipped),
            "articles": stats.articles,
            "passages": stats.passages,
            "tokens": n_tokens,
        },
    )
    return replace(stats, tokens=n_tokens)


def _switch_current(index_root: Path, generation: Path) -> None:
    pointer = index_root / f"CURRENT.{os.getpid()}.tmp"
    pointer.write_text(generation.name, "utf-8")
    with open(pointer, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, index_root / "CURRENT")
    for old in _stale_generations(index_root, keep=generation.name):
        shutil.rmtree(old, ignore_errors=True)


def _stale_generations(index_root: Path, *, keep: str) -> Iterator[Path]:
    # Generations other than the current one are finished builds replaced since, or the
    # leftovers of a build that was killed; the lock is held, so none is being written.
    for path in index_root.glob("gen-*"):
        if path.name != keep and path.is_dir():
            yield path
