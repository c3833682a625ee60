"""Follows a living archive: the running bot and REPL see pages added, changed and removed.

Every `ARCHIVE_BOT_REFRESH_SECONDS` (default 60, 0: never) the archive is listed again (a stat
of each `.txt` file, `listing.list_archive`) and compared with the index's commit. If files were
added, changed or removed, the index is updated in place (`retrieval.segments.update_index`,
which reads only those files) in a worker thread, and the `Searcher` is switched to the new
commit between questions (`Searcher.switch` swaps one reference; a search in flight finishes on
the state it started with). Segments are merged afterwards, when due, and switched in likewise.

A file still being written waits: one whose size or mtime changed since the previous check, or
whose mtime is less than `SETTLE_SECONDS` old, is left as the index last saw it (or left out,
if new); the next check comes after `SETTLE_SECONDS` instead of the full interval.

Polling rather than inotify (`watchfiles`): a stat walk of tens of thousands of files takes
milliseconds a minute, works on network and bind-mounted folders where inotify sees nothing,
needs no extra dependency, and a page drop is only usable once it is complete anyway.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass

from bot.engine import build
from bot.settings import Settings
from retrieval.listing import ArchiveFile, list_archive
from retrieval.search import Searcher
from retrieval.segments import Changes, changes_of, merge_segments
from retrieval.store import open_index

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0  # a file modified more recently than this may still be being written


@dataclass(frozen=True, slots=True)
class Refreshed:
    """One update the refresher made: what changed and how long until it was answerable."""

    changes: Changes
    seconds: float
    passages: int
    segments: int


class Refresher:
    """Polls the archive and switches a `Searcher` to an updated index when files change."""

    def __init__(self, settings: Settings, searcher: Searcher) -> None:
        self.settings = settings
        self.searcher = searcher
        self.pending = False  # files changed but still being written: check again soon
        self._seen = self._stats(self._listing())
        self._lock = threading.Lock()  # one check at a time

    @property
    def delay(self) -> float:
        """Seconds until the next check."""
        interval = self.settings.refresh_seconds
        return min(interval, SETTLE_SECONDS) if self.pending else interval

    def check(self) -> Refreshed | None:
        """List the archive; update the index and switch the searcher if files changed."""
        with self._lock:
            listing = self._listing()
            settled = self._settled(listing)
            self._seen = self._stats(listing)
            sources = self.searcher.index.manifest.sources
            changes = changes_of(sources, settled)
            self.pending = changes_of(sources, listing) != changes
            if not changes:
                return None
            started = time.perf_counter()
            stats = build(
                self.settings, tokenizer=self.searcher.tokenizer, listing=settled, merge=False
            )
            self.searcher.switch(open_index(self.settings.resolved_index_dir))
            seconds = time.perf_counter() - started
            log.info(
                "Archive changed (%s): index updated in %.2f s, %d passages in %d segments.",
                changes.summary(),
                seconds,
                stats.passages,
                stats.segments,
            )
            if merge_segments(self.settings.resolved_index_dir):
                self.searcher.switch(open_index(self.settings.resolved_index_dir))
            return Refreshed(changes, seconds, stats.passages, stats.segments)

    def check_logged(self) -> Refreshed | None:
        """`check`, with any failure logged: the bot goes on answering from the index it has."""
        try:
            return self.check()
        except Exception:  # the edge of a background loop: log it, keep the old index
            log.exception("Could not update the index; answering from the one in use.")
            return None

    def start_thread(self, stop: threading.Event) -> threading.Thread:
        """Check in a daemon thread until `stop` is set (the REPL's refresher)."""

        def loop() -> None:
            while not stop.wait(self.delay):
                self.check_logged()

        thread = threading.Thread(target=loop, name="archive-refresh", daemon=True)
        thread.start()
        return thread

    async def run(self) -> None:
        """Check forever, each update in a worker thread (the Telegram bot's refresher)."""
        while True:
            await asyncio.sleep(self.delay)
            await asyncio.to_thread(self.check_logged)

    def _listing(self) -> list[ArchiveFile]:
        archive = self.settings.archive_dir
        return list_archive(archive) if archive.is_dir() else []

    @staticmethod
    def _stats(listing: list[ArchiveFile]) -> dict[str, tuple[int, int | None]]:
        return {file.name: (file.size, file.mtime_ns) for file in listing}

    def _settled(self, listing: list[ArchiveFile]) -> list[ArchiveFile]:
        """The listing with files still being written as the index last saw them (or left out)."""
        now = time.time_ns()
        indexed = {state.name: state for state in self.searcher.index.manifest.sources}
        settled = []
        for file in listing:
            before = self._seen.get(file.name)
            young = file.mtime_ns is not None and now - file.mtime_ns < SETTLE_SECONDS * 1e9
            if not young and before in (None, (file.size, file.mtime_ns)):
                settled.append(file)
            elif file.name in indexed:
                state = indexed[file.name]
                settled.append(ArchiveFile(file.path, file.name, state.size, state.mtime_ns))
        return settled
