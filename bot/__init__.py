"""Front ends: settings, reply formatting, the CLI, the REPL and the Telegram bot.

Importing the package imports `retrieval` first, which caps OpenBLAS at one thread before any
module imports numpy (starting OpenBLAS's thread pool took about 50 ms of a fresh
`archive-bot ask`; see `retrieval/__init__.py`).
"""

import retrieval  # noqa: F401 - for its OpenBLAS cap, before numpy is imported
