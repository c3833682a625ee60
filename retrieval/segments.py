"""Pipeline step "archive → saved index", incrementally: segments written, deleted, merged.

An index is a list of immutable segments plus one commit file naming them (see
`retrieval.store` for the layout, `retrieval.manifest` for the commit). `update_index` lists the
archive (`listing.list_archive`) and compares it with the commit's `sources` (path, size,
mtime_ns): files added or changed are read into one new segment, files changed or removed have
their old passages marked in a new deletion mask of their segment, e.g. after

    day 1: 0301.txt 0302.txt          → seg-A (passages 0-40)
    day 2: 0303.txt added, 0302 fixed → seg-B (0303 and the new 0302), seg-A deleted-B.npy masks
                                        0302's old passages 21-40

Nothing already written is changed: the new files are written first, then the commit file, then
`CURRENT` is switched to it with an atomic rename, and only then are files no commit names any
more removed. A process killed, or a disk that fills, at any point leaves the previous commit
answering; two writers take a file lock. An index of another format, tokenizer, BM25 parameters
or passage size is rebuilt in full (`full=True` forces it).

`merge_segments` keeps the segment count and the deleted share low (a tiered policy: more than
`MAX_SEGMENTS` segments merges the smallest into one; a segment with more than
`MAX_DELETED_SHARE` deleted is rewritten without them). Merging copies live postings and
passages (with their file keys and page dates, so short ids and dates survive) without
tokenizing again, and is committed the same way, as a commit of its own. Two live files whose
short-id keys collide are refused (`IndexBuildError`), whichever segments hold them.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from filelock import FileLock

from retrieval.build import Chunk, Progress, chunks_of
from retrieval.errors import ArchiveError, IndexBuildError, IndexCorruptError, IndexMissingError
from retrieval.fieldbuild import FieldBuilder
from retrieval.ids import file_key
from retrieval.index import FIELDS, BM25Params, StringTable
from retrieval.listing import ArchiveFile, list_archive
from retrieval.live import READ_CHUNK, live_df
from retrieval.manifest import FORMAT_VERSION, FileState, IndexManifest, SegmentInfo, fingerprint
from retrieval.models import parse_passage_id
from retrieval.passages import DEFAULT_MAX_CHARS
from retrieval.store import PassageWriter, Segment, current_commit
from retrieval.tokenize import Tokenizer

log = logging.getLogger(__name__)

MAX_SEGMENTS = 10  # more than this: the smallest are merged
MAX_DELETED_SHARE = 0.3  # a segment with more of its passages deleted is rewritten without them
NAMES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Changes:
    """How an archive listing differs from what a commit indexed, by file name."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        """ "3 added, 1 changed, 0 removed"."""
        return f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed"


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What an update (or a full build) did, for `archive-bot index` and the log."""

    files: int  # live files of the index after it
    skipped: tuple[str, ...]  # files read by this update that had no text
    articles: int
    passages: int  # live passages after it
    tokens: int
    seconds: float
    changes: Changes = Changes()
    full: bool = True
    segments: int = 1


def changes_of(sources: Sequence[FileState], listing: Sequence[ArchiveFile]) -> Changes:
    """Files added, changed (size or mtime) and removed in `listing` since `sources`."""
    old = {state.name: state for state in sources}
    new = {file.name: file for file in listing}
    changed = [
        name
        for name, file in new.items()
        if name in old and (old[name].size, old[name].mtime_ns) != (file.size, file.mtime_ns)
    ]
    return Changes(
        added=tuple(sorted(name for name in new if name not in old)),
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(name for name in old if name not in new)),
    )


def build_index(
    archive_dir: Path,
    index_root: Path,
    tokenizer: Tokenizer,
    *,
    params: BM25Params | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress: Progress | None = None,
) -> BuildStats:
    """Build the whole index of an archive anew (one segment) and make it current."""
    return update_index(
        archive_dir, index_root, tokenizer, params=params, max_chars=max_chars,
        progress=progress, full=True,
    )  # fmt: skip


def update_index(
    archive_dir: Path,
    index_root: Path,
    tokenizer: Tokenizer,
    *,
    params: BM25Params | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    progress: Progress | None = None,
    full: bool = False,
    listing: Sequence[ArchiveFile] | None = None,
    merge: bool = True,
) -> BuildStats:
    """Bring the index up to date with the archive (or `listing`), then merge if due.

    Raises:
        ArchiveError: no archive folder, or no text in it. OSError: the index cannot be written
        (the previous commit stays current).
    """
    params = params or BM25Params()
    index_root.mkdir(parents=True, exist_ok=True)
    with FileLock(index_root / "build.lock"):
        started = time.perf_counter()
        if not archive_dir.is_dir():
            raise ArchiveError(
                f"Archive folder {archive_dir} does not exist. Check ARCHIVE_BOT_ARCHIVE_DIR."
            )
        files = list(listing) if listing is not None else list_archive(archive_dir)
        previous = (
            None if full else _previous(index_root, archive_dir, tokenizer, params, max_chars)
        )
        changes = changes_of(previous.sources if previous else (), files)
        if previous is not None and not changes:
            return _stats(previous, (), changes, started, full=False)
        commit_id = f"{time.time_ns()}-{os.getpid()}"
        written: list[Path] = []
        try:
            manifest, skipped = _updated(
                index_root, archive_dir, files, previous, changes, commit_id, written,
                tokenizer, params, max_chars, progress,
            )  # fmt: skip
            _commit(index_root, manifest, commit_id)
        except BaseException:
            _remove(written)  # nothing names them: the previous commit is still current
            raise
        _tidy(index_root, manifest)
        stats = _stats(manifest, skipped, changes, started, full=previous is None)
    if merge:
        merge_segments(index_root)
    return stats


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _stats(
    manifest: IndexManifest,
    skipped: Sequence[str],
    changes: Changes,
    started: float,
    *,
    full: bool,
) -> BuildStats:
    seconds = time.perf_counter() - started
    return BuildStats(
        manifest.files, tuple(skipped), manifest.articles, manifest.passages, manifest.tokens,
        seconds, changes, full, len(manifest.segments),
    )  # fmt: skip


def _previous(
    root: Path, archive_dir: Path, tokenizer: Tokenizer, params: BM25Params, max_chars: int
) -> IndexManifest | None:
    """The current commit if an update can build on it; None when a full build is due."""
    try:
        manifest = IndexManifest.read(current_commit(root))
    except (IndexMissingError, IndexCorruptError):
        return None
    same = (
        manifest.archive == str(archive_dir.resolve())
        and manifest.tokenizer == tokenizer.describe()
        and manifest.bm25 == params
        and manifest.max_chars == max_chars
        and all((root / s.name).is_dir() for s in manifest.segments)
    )
    return manifest if same else None


def _updated(
    root: Path,
    archive_dir: Path,
    files: list[ArchiveFile],
    previous: IndexManifest | None,
    changes: Changes,
    commit_id: str,
    written: list[Path],
    tokenizer: Tokenizer,
    params: BM25Params,
    max_chars: int,
    progress: Progress | None,
) -> tuple[IndexManifest, list[str]]:
    """The next commit: a new segment of the files to read, deletion masks for the files gone."""
    to_read = set(changes.added) | set(changes.changed)
    folder = root / f"seg-{commit_id}"
    written.append(folder)
    segment, states, skipped = _write_segment(
        folder, [f for f in files if f.name in to_read], tokenizer, params, max_chars, progress
    )
    gone = set(changes.changed) | set(changes.removed)
    kept = [s for s in previous.sources if s.name not in gone] if previous else []
    segments = _with_deletions(root, previous, gone, commit_id, written) if previous else []
    sources = sorted([*kept, *states], key=lambda s: s.name)
    live = [s for s in sources if s.segment is not None]
    _check_file_keys([s.name for s in live])
    if not sum(s.end - s.start for s in live):
        raise ArchiveError(
            f"No text to index in {archive_dir} ({len(sources) - len(live)} skipped). "
            "Check ARCHIVE_BOT_ARCHIVE_DIR."
        )
    manifest = IndexManifest(
        format_version=FORMAT_VERSION,
        archive=str(archive_dir.resolve()),
        fingerprint=fingerprint(files),
        tokenizer=tokenizer.describe(),
        bm25=params,
        max_chars=max_chars,
        files=len(live),
        articles=sum(s.articles for s in live),
        passages=sum(s.end - s.start for s in live),
        tokens=sum(s.tokens for s in live),
        skipped=tuple(s.name for s in sources if s.segment is None),
        segments=(*segments, *([segment] if segment else [])),
        sources=tuple(sources),
        updated=time.time(),
    )
    return manifest, skipped


def _check_file_keys(names: list[str]) -> None:
    """Refuse two live files with one short-id key, whichever segments hold them."""
    owners: dict[int, str] = {}
    for name in names:
        other = owners.setdefault(file_key(name), name)
        if other != name:
            raise IndexBuildError(
                f"{other!r} and {name!r} share the passage-id key {file_key(name):012x}, so "
                "links to their passages could open the wrong one. Rename one of them."
            )


def _with_deletions(
    root: Path, previous: IndexManifest, gone: set[str], commit_id: str, written: list[Path]
) -> list[SegmentInfo]:
    """The previous segments with the passages of the files gone marked deleted (a new mask
    file each, named in the commit); a segment left with no live passage is dropped."""
    segments = []
    for info in previous.segments:
        ranges = [
            (s.start, s.end) for s in previous.sources if s.segment == info.name and s.name in gone
        ]
        if not ranges:
            segments.append(info)
            continue
        mask = Segment.mask(root / info.name, info)
        for start, end in ranges:
            mask[start:end] = True
        deleted = int(mask.sum())
        if deleted == info.passages:
            continue
        name = f"deleted-{commit_id}.npy"
        written.append(root / info.name / name)
        np.save(root / info.name / name, mask)
        segments.append(replace(info, deleted=deleted, deletions=name))
    return segments


def _write_segment(
    folder: Path,
    files: list[ArchiveFile],
    tokenizer: Tokenizer,
    params: BM25Params,
    max_chars: int,
    progress: Progress | None,
) -> tuple[SegmentInfo | None, list[FileState], list[str]]:
    """Read files into a new segment folder; its info (None: no passages) and file states."""
    folder.mkdir()
    table = PassageWriter(folder)
    words, bigrams = FieldBuilder(folder / "words.spill"), FieldBuilder(folder / "bigrams.spill")
    vocab: dict[str, int] = {}
    spans: dict[str, list[int]] = {}  # name → [start, end, articles, tokens]
    skipped: list[str] = []
    for chunk in chunks_of(files, tokenizer, max_chars=max_chars):
        base = len(table)
        table.add(chunk.passages)
        remap = np.array([vocab.setdefault(w, len(vocab)) for w in chunk.words], dtype=np.uint64)
        terms, docs, tfs = chunk.word_postings
        words.add(remap[terms.astype(np.int64)], docs + np.uint64(base), tfs, chunk.word_lengths)
        keys, docs, tfs = chunk.bigram_postings
        bigrams.add(keys, docs + np.uint64(base), tfs, chunk.bigram_lengths)
        _file_spans(chunk, base, spans)
        for item in chunk.skipped:
            log.warning("skipped %s: %s", item.path, item.reason)
            skipped.append(item.path)
        if progress:
            progress(chunk.file_bytes)
    if not len(table):
        shutil.rmtree(folder)
        states = [FileState(f.name, f.size, f.mtime_ns, None, 0, 0, 0, 0) for f in files]
        return None, states, skipped
    table.finish()
    words.finish(params, list(vocab)).save(folder, "words")
    bigrams.finish(params).save(folder, "bigrams")
    states = [
        FileState(f.name, f.size, f.mtime_ns, folder.name, *spans[f.name])
        if f.name in spans
        else FileState(f.name, f.size, f.mtime_ns, None, 0, 0, 0, 0)
        for f in files
    ]
    size = sum(path.stat().st_size for path in folder.iterdir())
    return SegmentInfo(folder.name, len(table), 0, None, size), states, skipped


def _file_spans(chunk: Chunk, base: int, spans: dict[str, list[int]]) -> None:
    """Each file's passage range, articles and tokens in a chunk (its passages are one run)."""
    for i, passage in enumerate(chunk.passages):
        span = spans.setdefault(passage.source.file, [base + i, base + i, 0, 0])
        span[1] = base + i + 1
        span[2] += parse_passage_id(passage.passage_id)[2] == 0
        span[3] += int(chunk.word_lengths[i])


def _commit(root: Path, manifest: IndexManifest, commit_id: str) -> None:
    """Write the commit file and switch `CURRENT` to it: the one step that makes it current."""
    name = f"commit-{commit_id}.json"
    manifest.write(root / name)
    pointer = root / f"CURRENT.{os.getpid()}.tmp"
    pointer.write_text(name, "utf-8")
    with open(pointer, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(pointer, root / "CURRENT")


def _tidy(root: Path, manifest: IndexManifest) -> None:
    """Remove what the current commit does not name (best effort: the next commit tries again).

    The lock is held: anything unnamed is a replaced commit's, or the leftovers of a writer
    that was killed. Readers that opened those files keep their handles.
    """
    segments = {info.name: info for info in manifest.segments}
    try:
        commit = (root / "CURRENT").read_text("utf-8").strip()
        for path in root.iterdir():
            name = path.name
            if name.startswith(("seg-", "gen-")) and name not in segments and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif (name.startswith("commit-") and name != commit) or name.startswith("CURRENT."):
                path.unlink(missing_ok=True)
        for info in manifest.segments:
            for path in (root / info.name).glob("deleted-*.npy"):
                if path.name != info.deletions:
                    path.unlink(missing_ok=True)
    except OSError as error:  # the new commit is current already: what is left is only space
        log.warning("Could not remove old index files (%s); the next update will.", error)


# Merging ----------------------------------------------------------------------------------------


def merge_plan(
    segments: Sequence[SegmentInfo],
    *,
    max_segments: int = MAX_SEGMENTS,
    max_deleted_share: float = MAX_DELETED_SHARE,
) -> list[str]:
    """The segments to merge into one (in commit order), or [] when none is due."""
    picked = {s.name for s in segments if s.deleted > max_deleted_share * s.passages}
    if len(segments) > max_segments:
        by_size = sorted(segments, key=lambda s: s.passages - s.deleted)
        picked |= {s.name for s in by_size[: len(segments) - max_segments // 2 + 1]}
    return [s.name for s in segments if s.name in picked]


def merge_segments(
    index_root: Path,
    *,
    max_segments: int = MAX_SEGMENTS,
    max_deleted_share: float = MAX_DELETED_SHARE,
) -> int:
    """Merge the segments the policy picks into one, as a new commit; how many were merged."""
    with FileLock(index_root / "build.lock"):
        try:
            manifest = IndexManifest.read(current_commit(index_root))
        except (IndexMissingError, IndexCorruptError):
            return 0
        picked = merge_plan(
            manifest.segments, max_segments=max_segments, max_deleted_share=max_deleted_share
        )
        if not picked:
            return 0
        started = time.perf_counter()
        commit_id = f"{time.time_ns()}-{os.getpid()}"
        folder = index_root / f"seg-{commit_id}"
        try:
            info, moved = _merged(index_root, manifest, picked, folder)
            segments = [s for s in manifest.segments if s.name not in picked] + [info]
            sources = tuple(moved.get(s.name, s) for s in manifest.sources)
            merged = replace(manifest, segments=tuple(segments), sources=sources)
            merged = replace(merged, updated=time.time())
            _commit(index_root, merged, commit_id)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _tidy(index_root, merged)
    seconds = time.perf_counter() - started
    log.info(
        "Merged %d segments into one (%d passages) in %.1f s.", len(picked), info.passages, seconds
    )
    return len(picked)


def _merged(
    root: Path, manifest: IndexManifest, picked: list[str], folder: Path
) -> tuple[SegmentInfo, dict[str, FileState]]:
    """Write the live passages and postings of the picked segments into one new segment."""
    folder.mkdir()
    table = PassageWriter(folder)
    builders = {name: FieldBuilder(folder / f"{name}.spill") for name in FIELDS}
    vocab: dict[str, int] = {}
    moved: dict[str, FileState] = {}
    by_segment: dict[str, list[FileState]] = defaultdict(list)
    for state in manifest.sources:
        if state.segment is not None:
            by_segment[state.segment].append(state)
    infos = {info.name: info for info in manifest.segments}
    for name in picked:
        segment = Segment(root / name, infos[name])
        alive = ~Segment.mask(root / name, infos[name])
        base = len(table)
        remap = np.full(len(alive), -1, dtype=np.int64)
        remap[alive] = base + np.arange(int(alive.sum()))
        table.add([segment.passages[int(i)] for i in np.flatnonzero(alive)])
        for field, builder in builders.items():
            _copy_postings(segment, field, alive, remap, builder, vocab)
        for state in by_segment[name]:
            start = int(remap[state.start]) if state.end > state.start else base
            moved[state.name] = replace(
                state, segment=folder.name, start=start, end=start + state.end - state.start
            )
    table.finish()
    builders["words"].finish(manifest.bm25, list(vocab)).save(folder, "words")
    builders["bigrams"].finish(manifest.bm25).save(folder, "bigrams")
    size = sum(path.stat().st_size for path in folder.iterdir())
    return SegmentInfo(folder.name, len(table), 0, None, size), moved


def _copy_postings(
    segment: Segment,
    field: str,
    alive: np.ndarray,
    remap: np.ndarray,
    builder: FieldBuilder,
    vocab: dict[str, int],
) -> None:
    """Add a segment's live postings of one field to a merge's builder, renumbered."""
    arrays = segment.fields[field]
    offsets = np.asarray(arrays.offsets)
    if len(arrays.term_offsets) > 1:  # words: ids in the merged vocabulary, live words only
        words = StringTable(arrays.terms, arrays.term_offsets)
        df = live_df(arrays, ~alive)
        term_map = np.zeros(len(df), dtype=np.uint64)
        for t in np.flatnonzero(df > 0).tolist():
            term_map[t] = vocab.setdefault(words[t], len(vocab))
    else:
        term_map = np.asarray(arrays.keys, dtype=np.uint64)
    lengths = np.asarray(arrays.lengths[:])[alive]
    total = int(offsets[-1])
    for first in range(0, max(total, 1), READ_CHUNK):
        last = min(first + READ_CHUNK, total)
        docs = np.asarray(arrays.docs[first:last]).astype(np.int64)
        tfs = np.asarray(arrays.tfs[first:last])
        terms = np.searchsorted(offsets, np.arange(first, last), "right") - 1
        keep = alive[docs]
        builder.add(term_map[terms[keep]], remap[docs[keep]].astype(np.uint64), tfs[keep], lengths)
        lengths = lengths[:0]


# Status -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexStatus:
    """What `archive-bot index --status` shows: segments, live and deleted, pending changes."""

    segments: tuple[SegmentInfo, ...]
    live: int
    deleted: int
    files: int
    pending: Changes  # the archive now against the last commit
    updated: float


def index_status(archive_dir: Path, index_root: Path) -> IndexStatus:
    """The current commit's segments and what changed in the archive since it was written."""
    manifest = IndexManifest.read(current_commit(index_root))
    listing = list_archive(archive_dir) if archive_dir.is_dir() else []
    return IndexStatus(
        segments=manifest.segments,
        live=manifest.passages,
        deleted=sum(s.deleted for s in manifest.segments),
        files=manifest.files,
        pending=changes_of(manifest.sources, listing),
        updated=manifest.updated,
    )
