"""Short passage ids for links and buttons, and an article cut into pages that fit a message.

Part of step "ranked passages → Telegram": the id a front end puts in callback data
("full:ID:2") or a deep link ("/start ID"), and the pages it shows when a user reads on.

A passage id today is "<file>#<article>.<n>" ("魅力鄄城/2023/0816_第3版.txt#2.0"): long and
not ASCII. `short_id` packs the same three parts into 16 characters of base64url:

    short_id("魅力鄄城/2023/0816_第3版.txt", 2, 0)  -> "jCVYzeUnAAACAAAA"
    parse_short_id("jCVYzeUnAAACAAAA")  -> PassageKey(file_key=0x8c2558cde527, article=2, number=0)

    bytes 0-5   blake2b-48 of the file's relative path (POSIX, Unicode NFC)
    bytes 6-8   article number, big-endian, < 2**24
    bytes 9-11  passage number within the article, big-endian, < 2**24

Twelve bytes are exactly 16 base64url characters, so there is no padding and every id has the
same length; the alphabet [A-Za-z0-9_-] is the one Telegram allows in deep links, and
"full:" + id + ":" + page stays far below the 64 bytes of callback data. The id depends only on
the path and the two numbers, which the splitter derives from the file's text: it is the same
in every process (blake2b, not Python's salted `hash()`) and after a rebuild of an unchanged
file. The path is NFC-normalised first, so a file copied from macOS (NFD names) keeps its ids.

Collisions: two files share a 48-bit key with probability about n² / 2⁴⁹ for n files: 5,000
files 4·10⁻⁸, 100,000 files 2·10⁻⁵, a million files 0.2 %. The index should still check, at
build time, that no two of its files share a key, and refuse (or fall back) if they do.

`article_pages` cuts an article's text into pages of at most `limit − reserve` UTF-16 code
units (Telegram's measure; `reserve` leaves room for a heading and "2/5"): at the last
paragraph break of the page, else the last sentence end, else at the limit. The pages joined
with "" give the text back exactly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from dataclasses import dataclass

from retrieval.errors import PassageGoneError
from retrieval.models import parse_passage_id

__all__ = [
    "ID_CHARS",
    "ID_FORMAT",
    "MAX_NUMBER",
    "MalformedIdError",
    "PassageKey",
    "article_pages",
    "file_key",
    "id_of",
    "parse_short_id",
    "short_id",
    "utf16_len",
]

KEY_BYTES = 6
NUMBER_BYTES = 3
MAX_NUMBER = 2 ** (8 * NUMBER_BYTES) - 1
ID_CHARS = 16  # (6 + 3 + 3) bytes of base64url, no padding
ID_FORMAT = "short-v1: blake2b-48(path) + article:24 + number:24, base64url"  # in meta.json
TELEGRAM_MAX_CHARS = 4096  # per message, in UTF-16 code units
PAGE_RESERVE = 96  # room on each page for a heading line and a "2/5" counter
_ID = re.compile(rf"[A-Za-z0-9_-]{{{ID_CHARS}}}")
_PARAGRAPH_END = re.compile(r"\n+")
_SENTENCE_END = re.compile(r"[。！？!?；;…]+[”’」』）)\]】》]*")


class MalformedIdError(PassageGoneError, ValueError):
    """Not a passage id of this archive (cut, mistyped or forged). Search again for a fresh one."""


@dataclass(frozen=True, slots=True)
class PassageKey:
    """What a short id holds: the file's 48-bit key, the article and the passage number."""

    file_key: int
    article: int
    number: int


def file_key(file: str) -> int:
    """The 48-bit key of a file's relative path (blake2b of its NFC form)."""
    name = unicodedata.normalize("NFC", file).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(name, digest_size=KEY_BYTES).digest(), "big")


def short_id(file: str, article: int, number: int) -> str:
    """The 16-character base64url id of passage `number` of article `article` of `file`."""
    for name, value in (("article", article), ("number", number)):
        if not 0 <= value <= MAX_NUMBER:
            raise ValueError(f"{name} {value} is outside 0..{MAX_NUMBER}")
    raw = (
        file_key(file).to_bytes(KEY_BYTES, "big")
        + article.to_bytes(NUMBER_BYTES, "big")
        + number.to_bytes(NUMBER_BYTES, "big")
    )
    return base64.urlsafe_b64encode(raw).decode("ascii")


def id_of(passage_id: str) -> str:
    """The short id of a passage given its long id ("<file>#<article>.<n>")."""
    return short_id(*parse_passage_id(passage_id))


def parse_short_id(passage_id: str) -> PassageKey:
    """The file key, article and number of a short id; `MalformedIdError` if it is not one."""
    if not isinstance(passage_id, str) or _ID.fullmatch(passage_id) is None:
        raise MalformedIdError(
            f"{str(passage_id)[:40]!r} is not a passage id ({ID_CHARS} characters of A-Z, a-z, "
            "0-9, _ and -): copy the id of a passage from an answer."
        )
    try:
        raw = base64.urlsafe_b64decode(passage_id)
    except (binascii.Error, ValueError) as error:  # unreachable for 16 chars of the alphabet
        raise MalformedIdError(f"{passage_id!r} is not base64url") from error
    article, number = raw[KEY_BYTES : KEY_BYTES + NUMBER_BYTES], raw[KEY_BYTES + NUMBER_BYTES :]
    return PassageKey(
        int.from_bytes(raw[:KEY_BYTES], "big"),
        int.from_bytes(article, "big"),
        int.from_bytes(number, "big"),
    )


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the measure of Telegram's message limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def article_pages(
    text: str, *, limit: int = TELEGRAM_MAX_CHARS, reserve: int = PAGE_RESERVE
) -> list[str]:
    """Pages of at most `limit − reserve` UTF-16 units, never empty, that join back to `text`.

    A page ends at its last paragraph break, else its last sentence end, else where the room
    runs out; a break is only taken in the page's second half, so no page is left nearly empty.
    The text is measured as given: a front end sending HTML measures the escaped text instead.
    """
    room = limit - reserve
    if room < 2:  # one character outside the BMP takes two units
        raise ValueError(f"limit {limit} − reserve {reserve} leaves no room for a character")
    pages = []
    while text:
        end = _fitting(text, room)
        if end < len(text):
            end = _break(text[:end]) or end
        pages.append(text[:end])
        text = text[end:]
    return pages


def _fitting(text: str, room: int) -> int:
    """How many characters from the start of `text` fit in `room` UTF-16 units."""
    used = 0
    for i, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > room:
            return i
    return len(text)


def _break(window: str) -> int | None:
    """Where a page cut from `window` ends: a paragraph, else a sentence end, in its 2nd half."""
    half = len(window) // 2
    for boundary in (_PARAGRAPH_END, _SENTENCE_END):
        ends = [m.end() for m in boundary.finditer(window) if m.end() > half]
        if ends:
            return ends[-1]
    return None
