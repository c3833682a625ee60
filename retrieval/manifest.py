"""What a saved index was built from (`IndexManifest`, its `meta.json`) and whether it still fits.

Every commit of an index is one small JSON file, `commit-<ns>-<pid>.json`, written after the
segment files it names and before `CURRENT` is switched to it, e.g.

    {"format_version": 7, "archive": "/data/archive", "fingerprint": "9f2c…",
     "tokenizer": {"version": 3, "segmenter": "rjieba 0.1.13 …", …},
     "bm25": {"k1": 1.5, "b": 0.75, "epsilon": 0.25}, "max_chars": 1000,
     "files": 2, "articles": 9, "passages": 12, "tokens": 840, "skipped": [],
     "ids": "short-v1: blake2b-48(path) + article:24 + number:24, base64url",
     "segments": [{"name": "seg-1764…-81", "passages": 14, "deleted": 2,
                   "deletions": "deleted-1764…-90.npy", "bytes": 52311}],
     "sources": [{"name": "2024/0301.txt", "size": 4810, "mtime_ns": 1764…,
                  "segment": "seg-1764…-81", "start": 0, "end": 7, "articles": 3,
                  "tokens": 512}, …],
     "updated": 1764480000.5}

`sources` is what an update compares the archive listing with (`retrieval.segments`).

An index of another format version cannot be opened at all (`IndexCorruptError`). One that
opens is compared with what the caller would build now (`Expected`: the archive's fingerprint,
the tokenizer, the BM25 parameters, the passage size) by `IndexManifest.check`, the one place
that decides staleness: it raises `IndexStaleError` naming every part that differs, and the
caller only decides what to do (rebuild, or keep answering from the old index).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from retrieval.errors import IndexCorruptError, IndexStaleError
from retrieval.ids import ID_FORMAT
from retrieval.index import BM25Params
from retrieval.listing import ArchiveFile, list_archive
from retrieval.passages import DEFAULT_MAX_CHARS
from retrieval.tokenize import Tokenizer, TokenizerInfo

# 5: file keys and page dates, short ids (`ids.ID_FORMAT`); 6: + block bounds; 7: segments
# and commit files, each segment's passage table with file keys and dates, fields with blocks
FORMAT_VERSION = 7


def fingerprint(files: Sequence[ArchiveFile]) -> str:
    """Fingerprint of an archive's listing: every file's relative path, size and mtime."""
    digest = hashlib.sha256()
    for file in files:
        if file.mtime_ns is None:  # could not be looked at: not part of what was indexed
            continue
        digest.update(f"{file.name}\0{file.size}\0{file.mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Expected:
    """What an index built now would be built from: the yardstick a saved one is checked by."""

    fingerprint: str
    tokenizer: TokenizerInfo
    bm25: BM25Params
    max_chars: int

    @classmethod
    def of(
        cls,
        archive_dir: Path,
        tokenizer: Tokenizer,
        *,
        params: BM25Params | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> Expected:
        """What building `archive_dir` with these settings would record."""
        files = list_archive(archive_dir) if archive_dir.is_dir() else []
        return cls(fingerprint(files), tokenizer.describe(), params or BM25Params(), max_chars)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """One immutable segment of a commit: its folder, passage slots and deletion mask."""

    name: str  # folder below the index root, "seg-<ns>-<pid>"
    passages: int  # passage slots, deleted ones included
    deleted: int
    deletions: str | None  # mask file in the folder ("deleted-<commit>.npy"), None: none
    bytes: int  # size of the segment's files


@dataclass(frozen=True, slots=True)
class FileState:
    """An archive file as the commit saw it, and where its passages are."""

    name: str  # relative to the archive folder, POSIX-style
    size: int
    mtime_ns: int | None
    segment: str | None  # None: skipped (unreadable or empty), no passages
    start: int  # local passage ids in the segment, start to end
    end: int
    articles: int
    tokens: int  # word tokens of its passages


@dataclass(frozen=True, slots=True)
class IndexManifest:
    """A saved index's description: how it was built, from what, and what it holds.

    `files`, `articles`, `passages` and `tokens` count the live passages of all segments.
    """

    format_version: int
    archive: str  # absolute path of the archive folder
    fingerprint: str
    tokenizer: TokenizerInfo
    bm25: BM25Params
    max_chars: int  # passage size
    files: int
    articles: int
    passages: int
    tokens: int  # word tokens of all passages
    skipped: tuple[str, ...]  # archive files that could not be read
    ids: str = ID_FORMAT  # how passage ids (links, buttons) are made: `ids.short_id`
    segments: tuple[SegmentInfo, ...] = ()
    sources: tuple[FileState, ...] = ()  # every listed file, by name
    updated: float = 0.0  # when this commit was written (Unix time)

    def check(self, expected: Expected) -> None:
        """Raise IndexStaleError naming every way this index differs from `expected`."""
        reasons = []
        if self.fingerprint != expected.fingerprint:
            reasons.append("the archive changed since it was built")
        if self.tokenizer != expected.tokenizer:
            reasons.append("the tokenizer or its dictionaries changed")
        if self.bm25 != expected.bm25:
            reasons.append(f"the BM25 parameters changed ({self.bm25} → {expected.bm25})")
        if self.max_chars != expected.max_chars:
            sizes = f"{self.max_chars} → {expected.max_chars} characters"
            reasons.append(f"the passage size changed ({sizes})")
        if reasons:
            raise IndexStaleError(
                f"The saved index no longer fits: {'; '.join(reasons)}. "
                "Run `archive-bot index` to rebuild it."
            )

    def write(self, path: Path) -> None:
        """Write the commit file at `path` (a temporary name, fsynced, then renamed)."""
        text = json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: Path) -> IndexManifest:
        """Read a commit file; unreadable, incomplete or of another format version is corrupt."""
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as error:
            raise IndexCorruptError(
                f"Index metadata is unreadable ({error}). Run `archive-bot index` to rebuild."
            ) from error
        found = data.get("format_version") if isinstance(data, dict) else None
        if found != FORMAT_VERSION:
            raise IndexCorruptError(
                f"Index format {found} is not the supported {FORMAT_VERSION}. "
                "Run `archive-bot index` to rebuild."
            )
        try:
            return _manifest(data)
        except (KeyError, TypeError, ValueError) as error:
            raise IndexCorruptError(
                f"Index metadata is incomplete ({error!r}). Run `archive-bot index` to rebuild."
            ) from error


def _manifest(data: dict[str, Any]) -> IndexManifest:
    """The manifest in a parsed `meta.json`, every field converted to its type."""
    skipped = data["skipped"]
    if not isinstance(skipped, list):
        raise TypeError("skipped is not a list")
    return IndexManifest(
        format_version=int(data["format_version"]),
        archive=str(data["archive"]),
        fingerprint=str(data["fingerprint"]),
        tokenizer=TokenizerInfo(**data["tokenizer"]),
        bm25=BM25Params(**data["bm25"]),
        max_chars=int(data["max_chars"]),
        files=int(data["files"]),
        articles=int(data["articles"]),
        passages=int(data["passages"]),
        tokens=int(data["tokens"]),
        skipped=tuple(str(name) for name in skipped),
        ids=str(data["ids"]),
        segments=tuple(SegmentInfo(**item) for item in data["segments"]),
        sources=tuple(FileState(**item) for item in data["sources"]),
        updated=float(data["updated"]),
    )
