"""Front ends: settings, reply formatting, the CLI, the REPL and the Telegram bot.

Importing the package caps OpenBLAS at one thread before any of its modules imports numpy:
starting OpenBLAS's thread pool took about 50 ms of a fresh `archive-bot ask` (a process that
only imports numpy: 85 ms instead of 140), and the reader's products, a few hundred rows by a
few dozen weights, are too small to be split between threads. A value already in the
environment is kept.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
