"""Errors of the retrieval core, all shown to the user; each message says what to do next.

RetrievalError
├── ArchiveError            the archive folder is missing, empty or unreadable
├── IndexMissingError       no index at the configured path
├── IndexCorruptError       an index that cannot be opened (truncated, tampered, old format)
├── IndexStaleError         an index that opens but no longer fits: the archive changed, or the
│                           tokenizer, the BM25 parameters or the passage size differ
├── IndexBuildError         a build that cannot be finished (too many passages, hash collision)
└── PassageGoneError        a passage id this archive does not hold (any more); its subclass
    └── MalformedIdError    (in `retrieval.ids`) is not an id at all
"""


class RetrievalError(Exception):
    """Base of every error this package raises on purpose."""


class ArchiveError(RetrievalError):
    """The archive folder is missing or holds no readable text. Check ARCHIVE_BOT_ARCHIVE_DIR."""


class IndexMissingError(RetrievalError):
    """No index at the configured path. Run `archive-bot index` to build it."""


class IndexCorruptError(RetrievalError):
    """The saved index is damaged or from another version. Run `archive-bot index` to rebuild."""


class IndexStaleError(RetrievalError):
    """The saved index was built from other inputs; the message names which. Rebuild it."""


class IndexBuildError(RetrievalError):
    """The archive cannot be indexed as it is; the message says what to change."""


class PassageGoneError(RetrievalError):
    """No passage with this id in the archive as indexed now. Ask again for a fresh one."""
