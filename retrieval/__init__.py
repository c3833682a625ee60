"""Retrieval core: archive files → clean text → articles → passages → tokens → BM25 → answers.

This package knows nothing of Telegram, settings or printing; `bot/` composes it.

Importing it caps OpenBLAS at one thread if numpy is not imported yet (a value already in the
environment is kept), as the bot has run since issue 15: the reader's products, a few hundred
rows by a few dozen weights, are too small to be split between threads, and starting the pool
took about 50 ms of a fresh `archive-bot ask`. The benchmarks, which import this package
without `bot`, then run numpy as the bot does (at a million passages the whole path took the
same time either way, within 2 %, three pairs of runs).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
