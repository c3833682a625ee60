"""Pipeline step "archive files → clean text": read every .txt file and clean its paragraphs.

`read_document` decodes each file (UTF-8 with or without BOM, UTF-16/32 with BOM, else GB18030)
and never raises for one bad file: binary junk, empty or unreadable files come back as
`Skipped(path, reason)`; only the build (`segments.build_index`) fails, for an archive folder
that is missing or holds nothing readable.

`clean_text` turns one file's text into paragraphs, undoing what OCR and hard wrapping did:

- NFKC (full-width digits, letters and punctuation become ASCII: "，" → ","), except "…",
  which NFKC would turn into "...", a string that no longer reads as a Chinese ellipsis;
  zero-width and control characters are dropped, line endings normalised.
- Spaces OCR puts between CJK characters go ("诈 宣 传 127 余 场 次 ，覆 盖" →
  "诈宣传127余场次,覆盖"): a space goes between a Han character and a digit or a punctuation
  mark other than a quote ("乡镇 (街道)" → "乡镇(街道)"), and between two CJK characters when
  a word on either side is a single Han character. Spaces between longer words stay, since
  headlines use them as separators ("睽违三载 初心不改"), and spaces between Latin words or
  numbers stay ("MH 60").
- Lines are joined into paragraphs. Inside a block of lines (no blank line between them) a
  line continues the one before unless that one ends a sentence (。!?;… maybe followed by
  closing quotes or brackets) or either is a headline with words set apart by spaces
  ("捂紧百姓钱袋子 构建反诈新格局"), or the line is indented or opens something new ("#",
  "——", "本报讯", "□", a byline...). A byline ending a paragraph ("...服务。 记者 吴文龙") is
  split off.
- Paragraphs broken mid-sentence are joined across blank lines ("溧阳市" / "" / "总工会" →
  "溧阳市总工会"). A paragraph is broken when it does not end a sentence and is no headline
  or byline: it is long, or not shaped like a headline (`looks_like_headline`), or it came
  from a hard-wrapped block of several lines. It is joined to the next paragraph unless that
  one is a headline or opens something new; a next paragraph that begins with a
  one-character clause or with closing punctuation ("频、防诈骗录音...") is always joined.
  A headline that interrupts a long broken sentence is moved after it when the text after
  the headline is such a fragment; otherwise it stays, as the title of what follows.
- Exact repeats of a paragraph are dropped, the first one kept.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from retrieval.chars import HAN_CLASS, code_points, is_han, nfkc
from retrieval.models import Document

HEADLINE_MAX_CHARS = 40

# (BOM, codec): UTF-32 first, because its little-endian BOM starts with UTF-16's.
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# Above this share of control or replacement characters a file is binary, not text.
_MAX_NOISE = 0.02

_LINE_BREAKS = ("\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029")  # all become "\n"
_SPACES = re.compile(r"[^\S\n]+")
_HAN = re.compile(f"[{HAN_CLASS}〇]")  # 〇 stands between Han characters in dates too
_CJK_PUNCT = frozenset("。、“”‘’《》〈〉「」『』【】〔〕…—·,;:!?()")
# Punctuation that takes no space next to a Han character (quotes may: "“出卷” 老师").
_TIGHT_PUNCT = frozenset("。、,;:!?()《》〈〉「」『』【】〔〕…")
_DIGITS = frozenset("0123456789")

_SENTENCE_END = re.compile(r"[。!?;…][”’」』)\]】》\"']*$")
_NOT_IN_HEADLINE = re.compile(r"[。;,]|[、…“‘《「『(【—]$")
_LEADS = ("本报讯", "本报电", "(上接", "(下转")
_STARTERS = ("#", "——", "本报讯", "本报电", "□", "■", "☉", "⊙", "◎", "●", "▲", "▶", "◆", "★")
_BYLINE_START = re.compile(
    r"^[□■☉⊙◎●(]*(?:本报记者|本报通讯员|本栏编辑|责任编辑|据新华社|(?:记者|通讯员|实习生|编辑) )"
)
_BYLINE_END = re.compile(r"(?:摄|文/图|图/文|供图)\)?$")
# A paragraph opening with a one-character clause ("频、防诈骗录音", "式,并组织") or with
# closing punctuation is the tail of a sentence broken off before it.
_FRAGMENT = re.compile(rf"^(?:[{HAN_CLASS}](?=[、,。;:!?”’)])|[、,。;:!?”’)】》」』])")
_TRAILING_BYLINE = re.compile(
    r"(?<=[。!?…”’]) ?([□■☉⊙◎●]?(?:本报记者|本报通讯员|记者 |通讯员 )[^。!?;,]*)$"
)
_PHRASE_SPACE = re.compile(f"[{HAN_CLASS}”」》)] [{HAN_CLASS}“「《(]")


@dataclass(frozen=True, slots=True)
class Skipped:
    """An archive file left out, with the reason to show the user."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Piece:
    """A line or paragraph on its way through cleaning.

    `wrapped`: it came from a block of several lines, so its end may be a hard wrap.
    `indented`: its first line was indented, which starts a paragraph.
    """

    text: str
    wrapped: bool = False
    indented: bool = False


def read_document(path: Path, name: str) -> Document | Skipped:
    """Read and decode one file; `name` is its path relative to the archive."""
    try:
        if not path.is_file():  # a FIFO or device named *.txt would block the read forever
            return Skipped(name, "cannot be read (not a regular file)")
        data = path.read_bytes()
    except OSError as error:
        return Skipped(name, f"cannot be read ({error.strerror or error})")
    text = decode(data)
    if text is None:
        return Skipped(name, "not text (binary, or not UTF-8, UTF-16 or GB18030)")
    if not text.strip():
        return Skipped(name, "empty")
    return Document(name, text)


def decode(data: bytes) -> str | None:
    """Decode a file's bytes by its BOM, else as UTF-8, else GB18030; None for binary junk."""
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    text = _decode(data, codec) if codec else _decode_unmarked(data)
    return None if text is None or _is_junk(text) else text


def _decode(data: bytes, codec: str) -> str | None:
    """`data` decoded strictly with `codec`, or None."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _decode_unmarked(data: bytes) -> str | None:
    """Text without a BOM: UTF-8, nearly-UTF-8 (a few bad bytes), else GB18030."""
    text = _decode(data, "utf-8")
    if text is not None:
        return text
    # A few broken bytes (a truncated file) keep it UTF-8: GB18030 would turn it to mojibake.
    # GB18030 text read as UTF-8 breaks nearly every non-ASCII character instead.
    lenient = data.decode("utf-8", errors="replace")
    broken = lenient.count("\ufffd")
    non_ascii = sum(1 for char in lenient if not char.isascii())
    if broken <= max(1, _MAX_NOISE * non_ascii):
        return lenient.replace("\ufffd", "")
    return _decode(data, "gb18030")


def _is_junk(text: str) -> bool:
    """Whether decoded text is really binary: NUL bytes, or many control/replacement chars."""
    if "\x00" in text:
        return True
    noise = int(np.count_nonzero(_mask_of(_is_noise)[code_points(text)]))
    return noise > _MAX_NOISE * len(text)


def _is_noise(char: str) -> bool:
    """A replacement character, or a control character other than whitespace."""
    return char == "\ufffd" or (unicodedata.category(char) == "Cc" and not char.isspace())


def _is_dropped(char: str) -> bool:
    """What normalisation drops: replacement, control (except whitespace) and format
    (zero-width, bidi) characters; whitespace is tidied later, line by line."""
    if char.isspace():
        return False
    return char == "\ufffd" or unicodedata.category(char) in ("Cc", "Cf")


@cache
def _mask_of(test: Callable[[str], bool]) -> np.ndarray:
    """Over all code points, True where `test` accepts the character (found once): a test per
    character in Python costs ≈ 1 µs, a look-up in this mask a few ns."""
    mask = np.zeros(sys.maxunicode + 1, dtype=bool)
    # Planes 3–13 hold only CJK letters and unassigned code points: no control or format
    # characters, so the test is left out there (it takes ≈ 0.5 s over all code points).
    for first, last in ((0, 0x30000), (0xE0000, sys.maxunicode + 1)):
        mask[first:last] = [test(chr(code)) for code in range(first, last)]
    return mask


def clean_text(text: str) -> list[str]:
    """The cleaned, non-empty paragraphs of one file's text, in order, without exact repeats."""
    pieces = [
        part
        for block in _blocks(normalize(text))
        for piece in _paragraphs(block)
        for part in _split_byline(piece)
    ]
    return list(dict.fromkeys(_join_broken(pieces)))


def _split_byline(paragraph: _Piece) -> list[_Piece]:
    """A paragraph with the byline that ends it ("...服务。 记者 吴文龙") split off."""
    match = _TRAILING_BYLINE.search(paragraph.text)
    if match is None or not is_byline(match.group(1)):
        return [paragraph]
    body = paragraph.text[: match.start()].rstrip()
    return [_Piece(body, paragraph.wrapped, paragraph.indented), _Piece(match.group(1))]


def normalize(text: str) -> str:
    """NFKC (keeping "…"), "\\n" line endings, no zero-width, control or replacement chars."""
    for line_break in _LINE_BREAKS:  # str.replace is a C loop; most files have none of these
        if line_break in text:
            text = text.replace(line_break, "\n")
    text = nfkc(text)
    codes = code_points(text)
    dropped = _mask_of(_is_dropped)[codes]
    if not dropped.any():
        return text
    return codes[~dropped].tobytes().decode("utf-32-le", "surrogatepass")


def close_cjk_spaces(line: str) -> str:
    """Drop the spaces OCR puts inside CJK text; keep those between words and Latin text."""
    tokens = _SPACES.sub(" ", line).strip().split(" ")
    out = tokens[0]
    for left, right in pairwise(tokens):
        out += right if _glued(left, right) else " " + right
    return out


def _glued(left: str, right: str) -> bool:
    """Whether the space between two non-empty words of a line is OCR noise."""
    a, b = left[-1], right[0]
    if (_is_han(a) and b in _DIGITS) or (a in _DIGITS and _is_han(b)):
        return True
    if (_is_han(a) and b in _TIGHT_PUNCT) or (a in _TIGHT_PUNCT and _is_han(b)):
        return True
    if not (_in_cjk_text(a) and _in_cjk_text(b) and (_is_han(a) or _is_han(b))):
        return False
    # Letter-spaced OCR leaves single characters; headlines separate words of 2+ characters.
    return min(len(_HAN.findall(left)), len(_HAN.findall(right))) <= 1


def _is_han(char: str) -> bool:
    """Whether a character is a Han ideograph, or 〇 (written between them in dates)."""
    return is_han(char) or char == "〇"


def _in_cjk_text(char: str) -> bool:
    """Whether a character is a Han ideograph or punctuation used in CJK text."""
    return char in _CJK_PUNCT or _is_han(char)


def _blocks(text: str) -> list[list[_Piece]]:
    """Lines grouped into blocks separated by blank lines; each line cleaned of OCR spaces."""
    blocks: list[list[_Piece]] = [[]]
    for line in text.split("\n"):
        if not line.strip():
            blocks.append([])
            continue
        blocks[-1].append(_Piece(close_cjk_spaces(line), indented=line[0].isspace()))
    return [block for block in blocks if block]


def _paragraphs(block: list[_Piece]) -> list[_Piece]:
    """The paragraphs of one block of lines: wrapped lines joined, headlines kept apart."""
    wrapped = len(block) > 1
    texts: list[str] = []
    starts: list[bool] = []
    for previous, line in zip([None, *block], block, strict=False):
        if previous is None or _starts_paragraph(previous.text, line):
            texts.append(line.text)
            starts.append(line.indented)
        else:
            texts[-1] = _glue(texts[-1], line.text)
    return [_Piece(t, wrapped, indented) for t, indented in zip(texts, starts, strict=True)]


def _starts_paragraph(previous: str, line: _Piece) -> bool:
    """Whether a line of a block starts a new paragraph rather than continuing the previous."""
    return (
        line.indented
        or starts_new(line.text)
        or ends_sentence(previous)
        or _is_phrase_headline(previous)
        or _is_phrase_headline(line.text)
    )


def _is_phrase_headline(line: str) -> bool:
    """A headline line inside a block: headline-shaped, with words separated by spaces."""
    return looks_like_headline(line) and _PHRASE_SPACE.search(line) is not None


def _glue(left: str, right: str) -> str:
    """Join two parts of one sentence: no space in CJK text, one between Latin words."""
    a, b = left[-1], right[0]
    latin = a.isascii() and b.isascii() and a.isalnum() and b.isalnum()
    return f"{left} {right}" if latin and not (a.isdigit() and b.isdigit()) else left + right


def _join_broken(pieces: list[_Piece]) -> list[str]:
    """Join paragraphs broken mid-sentence, moving a headline that interrupts one after it."""
    out: list[_Piece] = []
    held: list[_Piece] = []
    for piece in pieces:
        if held and not _FRAGMENT.match(piece.text):
            out.extend(held)
            held.clear()
        if out and _continues(out[-1], piece):
            out[-1] = _Piece(_glue(out[-1].text, piece.text), piece.wrapped)
        elif out and not held and _interrupts(out[-1], piece):
            held.append(piece)
            continue
        else:
            out.append(piece)
        out.extend(held)
        held.clear()
    return [piece.text for piece in out + held]


def _continues(paragraph: _Piece, following: _Piece) -> bool:
    """Whether `following` is the rest of the sentence `paragraph` breaks off."""
    text = following.text
    if following.indented or starts_new(text) or ends_sentence(paragraph.text):
        return False
    if _FRAGMENT.match(text):
        return not paragraph.text.startswith("#") and not is_byline(paragraph.text)
    return _is_broken(paragraph) and not looks_like_headline(text)


def _interrupts(paragraph: _Piece, following: _Piece) -> bool:
    """Whether `following` may be a headline printed inside the long sentence `paragraph` breaks.

    It is moved after the sentence only if the paragraph after it is a fragment that continues
    the sentence; otherwise it stays where it is and starts a new article.
    """
    return (
        _is_broken(paragraph)
        and len(paragraph.text) > HEADLINE_MAX_CHARS
        and looks_like_headline(following.text)
        and not is_byline(following.text)
    )


def _is_broken(paragraph: _Piece) -> bool:
    """Whether a paragraph stops mid-sentence (rather than being a headline or a byline)."""
    text = paragraph.text
    if ends_sentence(text) or text.startswith("#") or is_byline(text):
        return False
    return paragraph.wrapped or not looks_like_headline(text)


def ends_sentence(text: str) -> bool:
    """Whether text ends a sentence: 。!?;… maybe followed by closing quotes or brackets."""
    return _SENTENCE_END.search(text) is not None


def starts_new(text: str) -> bool:
    """Whether a paragraph can only start something new: a heading, a lead or a byline."""
    return text.startswith(_STARTERS) or is_byline(text)


def looks_like_headline(text: str) -> bool:
    """Whether a cleaned paragraph is shaped like a headline.

    A markdown heading, or a short paragraph (≤ HEADLINE_MAX_CHARS) with no sentence
    punctuation (。;,) that does not end mid-phrase (、… or an opening quote or bracket) and is
    not a news lead ("本报讯...") or a byline.
    """
    if text.startswith("#"):
        return True
    return (
        len(text) <= HEADLINE_MAX_CHARS
        and _NOT_IN_HEADLINE.search(text) is None
        and not text.startswith(_LEADS)
        and not is_byline(text)
    )


def is_byline(text: str) -> bool:
    """Whether a paragraph is only a byline or credit ("记者 吴文龙", "□本报记者 梁亚杰")."""
    if len(text) > HEADLINE_MAX_CHARS or re.search(r"[。!?;,]", text):
        return False
    return _BYLINE_START.match(text) is not None or _BYLINE_END.search(text) is not None
