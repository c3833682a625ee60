"""Composes the retrieval core with settings: the tokenizer, the index and the `Searcher`.

Every front end gets its `Searcher` from `open_searcher`, which opens the saved index and builds
it first when there is none, when it is damaged, or when it is stale (an archive that changed
is updated in place: only the files added or changed are read, `retrieval.segments`):
`open_index` checks it against what a build would use now (`manifest.Expected`: archive,
tokenizer, BM25 parameters, passage size) and raises `IndexStaleError` naming what differs;
this module only reacts, and a log line says why. When a rebuild cannot be written (a full
disk, no permission) and the stale index still opens, the bot keeps answering from it, with a
warning.

Every front end asks through `ask`, so that bad questions (`bot.questions`) are met alike.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.errors import IndexWriteError
from bot.questions import Outcome, Question
from bot.settings import Settings
from retrieval.errors import IndexCorruptError, IndexMissingError, IndexStaleError
from retrieval.index import BM25Params
from retrieval.manifest import Expected
from retrieval.models import Result
from retrieval.passages import DEFAULT_MAX_CHARS
from retrieval.reader import Reader, Weights
from retrieval.search import Searcher, Synonyms
from retrieval.store import Index, open_index
from retrieval.tokenize import Tokenizer

if TYPE_CHECKING:  # building imports the build pipeline; answering from an index does not
    from retrieval.build import Progress
    from retrieval.listing import ArchiveFile
    from retrieval.segments import BuildStats

log = logging.getLogger(__name__)


def make_tokenizer(settings: Settings) -> Tokenizer:
    """The tokenizer configured by the dictionaries in the config folder."""
    return Tokenizer.from_config(settings.config_dir)


def build(
    settings: Settings,
    *,
    tokenizer: Tokenizer | None = None,
    progress: Progress | None = None,
    full: bool = False,
    listing: Sequence[ArchiveFile] | None = None,
    merge: bool = True,
) -> BuildStats:
    """Bring the index of the configured archive up to date (only what changed, unless `full`).

    Raises:
        IndexWriteError: the index folder cannot be written (full disk, no permission).
    """
    from retrieval.segments import update_index

    root = settings.resolved_index_dir
    try:
        return update_index(
            settings.archive_dir,
            root,
            tokenizer or make_tokenizer(settings),
            params=BM25Params(),
            max_chars=DEFAULT_MAX_CHARS,
            progress=progress,
            full=full,
            listing=listing,
            merge=merge,
        )
    except OSError as error:  # reading is per file and never raises: this is the writing
        raise IndexWriteError(
            f"Could not write the index to {root}: {error.strerror or error}. Free some disk "
            "space or set ARCHIVE_BOT_INDEX_DIR to a writable folder, then run "
            "`archive-bot index`; an index saved before is left as it was."
        ) from error


def open_searcher(settings: Settings) -> Searcher:
    """Open the configured index, building or rebuilding it first when needed."""
    tokenizer = make_tokenizer(settings)
    root = settings.resolved_index_dir
    expected = Expected.of(
        settings.archive_dir, tokenizer, params=BM25Params(), max_chars=DEFAULT_MAX_CHARS
    )
    stale: Index | None = None
    level, full = logging.INFO, False
    try:
        index = open_index(root)
        stale = index  # kept to answer from if it turns out stale and cannot be rebuilt
        index.manifest.check(expected)
        return _searcher(settings, tokenizer, index)
    except IndexStaleError as error:
        reason = str(error)
    except IndexMissingError:
        reason = "there is none yet"
    except IndexCorruptError as error:
        reason, level = f"the saved one cannot be used ({error})", logging.WARNING
        full = True
    index = _rebuilt(settings, tokenizer, stale, reason, level=level, full=full)
    return _searcher(settings, tokenizer, index)


def _searcher(settings: Settings, tokenizer: Tokenizer, index: Index) -> Searcher:
    """A searcher over an opened index, with the configured synonyms."""
    synonyms = Synonyms.from_file(settings.config_dir / "synonyms.txt")
    reader = Reader(Weights.load(), tokenizer)
    return Searcher(index, tokenizer, synonyms=synonyms, reader=reader)


def _rebuilt(
    settings: Settings,
    tokenizer: Tokenizer,
    stale: Index | None,
    reason: str,
    *,
    level: int,
    full: bool,
) -> Index:
    """Build (or update) the index and open it; keep a stale one if it cannot be written."""
    root = settings.resolved_index_dir
    log.log(level, "Building the index of %s at %s: %s.", settings.archive_dir, root, reason)
    try:
        stats = build(settings, tokenizer=tokenizer, full=full)
    except IndexWriteError as error:
        if stale is None:
            raise
        log.warning("%s Answering from the index saved before (%s).", error, reason)
        return stale
    kind = "built" if stats.full else f"updated ({stats.changes.summary()})"
    log.info("Index %s: %d passages in %.1f s.", kind, stats.passages, stats.seconds)
    return open_index(root)


def ask(searcher: Searcher, question: Question, *, top_k: int, offset: int = 0) -> Outcome:
    """Search a prepared question; one with a problem is not searched (no hits)."""
    if question.problem is not None:
        return Outcome(question, Result(question.text, None, ()), searchable=False)
    result = searcher.ask(question.text, top_k=top_k, offset=offset)
    return Outcome(question, result, searchable=bool(result.hits) or result.searchable)
