"""Errors of the front ends, all shown to the user; each message says what to do next.

BotError                  shown to the user as is
├── ConfigError           a missing or invalid setting (names the variable)
└── IndexWriteError       the index cannot be written (full disk, no permission)
"""


class BotError(Exception):
    """Base of every error the front ends raise on purpose."""


class ConfigError(BotError):
    """A setting is missing or invalid; the message names the environment variable."""


class IndexWriteError(BotError):
    """The index could not be written; the message names the folder and what to free or set."""
