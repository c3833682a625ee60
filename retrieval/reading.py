"""Pipeline step "ranked passages → the whole article": a passage's short id back to its article.

A user who reads a passage may want the article around it (`archive-bot show ID`, the REPL's
`:open N`, Telegram's "全文" button and `/start ID` links). The id (`ids.short_id`) names a
file key, an article number and a passage number; the article is every passage of that file
and article, in order (`SegmentedPassages.article`: its live passages, in whichever segment
holds them), so no article text is stored twice.

Passages never overlap: `passages.split_passages` packs whole sentences into windows that
follow one another in the article's body, so passage n + 1 starts where passage n ended or
after a paragraph break ("\\n" and the whitespace around it, dropped from both). Joining them
in order, with a "\\n" where such a gap was, gives the body back:

    passages  (0, 812) "本报讯 昨日,……大桥历时三年建成。"   (813, 1530) "市民王先生说,……"
    text      "本报讯 昨日,……大桥历时三年建成。\\n市民王先生说,……"

An id of a file that is gone, or changed so that the article or passage no longer exists, is
`PassageGoneError`; a string that is not an id at all, its subclass `MalformedIdError`. An id
names a place (file, article, passage), so after its file changes it would open whatever is
there now: a link or button that must open what the user saw carries `text_check` of the
passage's text too (8 characters), and a passage whose text differs is gone as well.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from retrieval.errors import PassageGoneError
from retrieval.ids import parse_short_id
from retrieval.models import Passage
from retrieval.store import PassageTable, SegmentedPassages

__all__ = ["CHECK_CHARS", "FullArticle", "join_passages", "text_check", "whole_article"]

CHECK_BYTES = 6
CHECK_CHARS = 8  # base64url of CHECK_BYTES, no padding


@dataclass(frozen=True, slots=True)
class FullArticle:
    """An article rebuilt from its passages, named by the id of the passage it was opened from."""

    id: str
    file: str
    title: str | None
    date: datetime.date | None
    text: str


def text_check(text: str) -> str:
    """8 base64url characters of a passage's text hash: whether it is still the one shown."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=CHECK_BYTES).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def whole_article(
    table: PassageTable | SegmentedPassages, passage_id: str, *, check: str | None = None
) -> FullArticle:
    """The article holding the passage a short id names (whose text has `check`, if given).

    Raises:
        MalformedIdError: not an id. PassageGoneError: no such passage in this index, or its
        text is no longer the one `check` was made from.
    """
    key = parse_short_id(passage_id)
    passages = table.article(key)
    named = [p for p in passages if _number(p) == key.number]
    if not named or (check is not None and text_check(named[0].text) != check):
        raise PassageGoneError(
            f"No passage {passage_id} in the archive as indexed now: the archive changed since "
            "the id was given. Ask the question again for a fresh id."
        )
    source = passages[0].source
    return FullArticle(passage_id, source.file, source.title, source.date, join_passages(passages))


def join_passages(passages: Sequence[Passage]) -> str:
    """The article body of consecutive passages: a "\\n" where a paragraph break was dropped."""
    parts: list[str] = []
    end = None
    for passage in passages:
        if end is not None and passage.source.start > end:
            parts.append("\n")
        parts.append(passage.text)
        end = passage.source.end
    return "".join(parts)


def _number(passage: Passage) -> int:
    return int(passage.passage_id.rpartition(".")[2])
