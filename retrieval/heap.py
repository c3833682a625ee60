"""After "ranked passages → answer": the C heap's free memory handed back to the system.

A question's temporaries (the postings of a rare long query, the fused candidates' arrays, the
reader's feature rows) are freed when it is answered, but glibc keeps freed memory in its heap
for reuse, and each large block freed raises the size below which it allocates from the heap
instead of mapping fresh pages (its dynamic mmap threshold). After 1,000 questions at a million
passages the heap held 100 MB of which a few MB were live objects (`tracemalloc`).
`malloc_trim(0)` returns the free pages in the middle of the heap too (benchmarks/RESULTS.md,
"1M passages, resident memory"). C libraries without it (musl) simply keep theirs.

Searches release it every `TRIM_EVERY` questions (`after_question`), not after each: a page
handed back is a page the next question's temporaries fault in again (at a million passages
255 page faults a question when trimming after each, 195 every 16th; the whole path 0.974× per
question, RESULTS.md "Issue 15, tenth pass"), while the heap's free memory between releases is
bounded by what a few questions allocate at once.

Importing this module also keeps the process to one malloc arena: glibc gives threads arenas
of their own (up to 8 a core) to spare them a lock, and half of a question's passages is ranked in
a helper thread (`retrieval.search`), whose arena kept about 30 MB more resident after 1,000
questions at a million passages, which the trim did not return; searches allocate a few large
arrays each, too few for the lock to matter (the same speed with one arena, RESULTS.md).
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim` from the process's own symbols, None where the C library has none."""
    try:
        return ctypes.CDLL(None).malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()
M_ARENA_MAX = -8  # glibc's mallopt parameter: the most arenas the process may have


def _one_arena() -> None:
    """Let threads created from now on share the main arena (glibc; a no-op elsewhere)."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        return


_one_arena()


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (a no-op without glibc)."""
    if _TRIM is not None:
        _TRIM(0)


TRIM_EVERY = 16  # questions between releases of the heap's free memory (`after_question`)
_questions = itertools.count(1)  # questions answered, for `after_question` (thread-safe)


def after_question() -> None:
    """Count a question answered; every `TRIM_EVERY`-th hands the heap's free pages back
    (`release_free_memory`)."""
    if next(_questions) % TRIM_EVERY == 0:
        release_free_memory()
