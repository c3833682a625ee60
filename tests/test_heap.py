"""The C heap's free memory is handed back after a question (retrieval.heap)."""

from __future__ import annotations

import platform

import psutil
import pytest

from retrieval import heap

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_heap_memory_leaves_the_resident_set() -> None:
    """Memory freed below a block still in use stays resident until it is released: 64 MB of
    small blocks freed under a kept one at the heap's top come back to the system."""
    process = psutil.Process()
    blocks = [bytearray(60_000) for _ in range(1100)]  # below any mmap threshold: the heap
    kept = bytearray(60_000)  # above them, so that freeing them cannot shrink the heap's top
    del blocks
    before = process.memory_info().rss
    heap.release_free_memory()
    assert process.memory_info().rss < before - 32_000_000
    assert len(kept) == 60_000


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_glibc_trim_is_found_and_harmless_with_nothing_free() -> None:
    """On glibc the release is `malloc_trim`; with nothing free it does nothing and raises
    nothing."""
    assert heap._TRIM is not None
    heap.release_free_memory()
    heap.release_free_memory()
