"""The C heap's free memory is handed back after a question (retrieval.heap)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from retrieval import heap

GLIBC = platform.libc_ver()[0] == "glibc"

# In a fresh interpreter, so that the heap's layout is known: 64 MB of small blocks (below
# glibc's mmap threshold, so on the heap) freed under one kept block, which stops free() from
# shrinking the heap's top.
FREED_UNDER_A_KEPT_BLOCK = """
import os
from pathlib import Path
from retrieval import heap
def resident():
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")
blocks = [bytearray(60_000) for _ in range(1100)]
kept = bytearray(60_000)
del blocks
"""
# Then the resident set (bytes) before and after the release.
FREED_THEN_RELEASED = (
    FREED_UNDER_A_KEPT_BLOCK
    + """
before = resident()
heap.release_free_memory()
print(before, resident(), len(kept))
"""
)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_heap_memory_leaves_the_resident_set() -> None:
    """Memory freed below a block still in use stays resident until it is released; the
    release gives it back to the system."""
    run = [sys.executable, "-c", FREED_THEN_RELEASED]
    before, after, _ = map(int, subprocess.check_output(run, text=True).split())
    assert before - after > 32_000_000


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_harmless_with_nothing_free() -> None:
    """On glibc the release is `malloc_trim`; with nothing free it does nothing and raises
    nothing."""
    assert heap._TRIM is not None
    heap.release_free_memory()
    heap.release_free_memory()


# Or released by questions: the resident set after each of `TRIM_EVERY` questions.
FREED_THEN_QUESTIONS = (
    FREED_UNDER_A_KEPT_BLOCK
    + """
sizes = [resident()]
for _ in range(heap.TRIM_EVERY):
    heap.after_question()
    sizes.append(resident())
print(*sizes, len(kept))
"""
)


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_questions_release_the_heap_every_trim_every_questions() -> None:
    """Freed memory stays resident through `TRIM_EVERY` - 1 questions, for their temporaries
    to reuse, and the `TRIM_EVERY`-th question gives it back."""
    run = [sys.executable, "-c", FREED_THEN_QUESTIONS]
    *sizes, _ = map(int, subprocess.check_output(run, text=True).split())
    assert len(sizes) == heap.TRIM_EVERY + 1
    assert max(sizes[:-1]) - min(sizes[:-1]) < 4_000_000
    assert sizes[-2] - sizes[-1] > 32_000_000


# In a fresh interpreter: four threads allocate at once, then glibc lists its arenas.
ARENAS_AFTER_THREADS = """
import ctypes, sys, threading
if sys.argv[1] == "heap":
    import retrieval.heap
def work():
    blocks = [bytearray(60_000) for _ in range(100)]
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()
"""


@pytest.mark.skipif(not GLIBC, reason="arenas are glibc's")
def test_threads_share_one_arena_once_the_module_is_imported() -> None:
    """Without the module, threads that allocate at once get arenas of their own; with it,
    every thread allocates from the main arena, which the release trims."""

    def arenas(mode: str) -> int:
        run = [sys.executable, "-c", ARENAS_AFTER_THREADS, mode]
        stats = subprocess.run(run, capture_output=True, text=True, check=True).stderr
        return sum(line.startswith("Arena ") for line in stats.splitlines())

    assert arenas("plain") > 1
    assert arenas("heap") == 1
