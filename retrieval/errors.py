"""Errors of the retrieval core, all shown to the user; each message says what to do next.

RetrievalError
├── ArchiveError            the archive folder is missing, empty or unreadable
├── IndexMissingError       no index at the configured path
├── IndexCorruptError       an index that cannot be opened (truncated, tampered, old format)
└── QueryError              a question that cannot be searched (too long, nothing to match)
"""


class RetrievalError(Exception):
    """Base of every error this package raises on purpose."""


class ArchiveError(RetrievalError):
    """The archive folder is missing or holds no readable text. Check ARCHIVE_BOT_ARCHIVE_DIR."""


class IndexMissingError(RetrievalError):
    """No index at the configured path. Run `archive-bot index` to build it."""


class IndexCorruptError(RetrievalError):
    """The saved index is damaged or from another version. Run `archive-bot index` to rebuild."""


class QueryError(RetrievalError):
    """The question cannot be searched; the message says how to rephrase it."""
