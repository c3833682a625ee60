"""Composes the retrieval core with settings: the tokenizer, the index and the `Searcher`.

Every front end gets its `Searcher` from `open_searcher`, which opens the saved index and builds
it first when there is none, when it is damaged, or when the archive or the tokenizer changed
since it was built; a log line says which.
"""

from __future__ import annotations

import logging

from bot.settings import Settings
from retrieval.errors import IndexCorruptError, IndexMissingError
from retrieval.index import BM25Params
from retrieval.search import Searcher, Synonyms
from retrieval.store import BuildStats, Index, Progress, build_index, fingerprint, open_index
from retrieval.tokenize import Tokenizer

log = logging.getLogger(__name__)


def make_tokenizer(settings: Settings) -> Tokenizer:
    """The tokenizer configured by the dictionaries in the config folder."""
    return Tokenizer.from_config(settings.config_dir)


def build(
    settings: Settings, *, tokenizer: Tokenizer | None = None, progress: Progress | None = None
) -> BuildStats:
    """(Re)build the index of the configured archive."""
    return build_index(
        settings.archive_dir,
        settings.resolved_index_dir,
        tokenizer or make_tokenizer(settings),
        params=BM25Params(),
        progress=progress,
    )


def stale_reason(index: Index, settings: Settings, tokenizer: Tokenizer) -> str | None:
    """Why a saved index no longer fits the archive or tokenizer, or None when it does."""
    if index.fingerprint != fingerprint(settings.archive_dir):
        return "the archive changed since it was built"
    if index.meta.get("tokenizer") != tokenizer.describe():
        return "the tokenizer or its dictionaries changed"
    return None


def open_searcher(settings: Settings) -> Searcher:
    """Open the configured index, building or rebuilding it first when needed."""
    tokenizer = make_tokenizer(settings)
    root = settings.resolved_index_dir
    try:
        index = open_index(root)
        reason = stale_reason(index, settings, tokenizer)
    except IndexMissingError:
        reason = "there is none yet"
    except IndexCorruptError as error:
        reason = f"the saved one cannot be used ({error})"
    if reason is not None:
        log.info("Building the index of %s at %s: %s.", settings.archive_dir, root, reason)
        stats = build(settings, tokenizer=tokenizer)
        log.info("Index built: %d passages in %.1f s.", stats.passages, stats.seconds)
        index = open_index(root)
    synonyms = Synonyms.from_file(settings.config_dir / "synonyms.txt")
    return Searcher(index, tokenizer, synonyms=synonyms)
