"""Errors of the front ends, all shown to the user; each message says what to do next.

BotError                  shown to the user as is
└── ConfigError           a missing or invalid setting (names the variable)
"""


class BotError(Exception):
    """Base of every error the front ends raise on purpose."""


class ConfigError(BotError):
    """A setting is missing or invalid; the message names the environment variable."""
