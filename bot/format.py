"""Pipeline step "answer → Telegram / REPL / CLI": every text a front end shows, built purely.

A builder (`outcome_reply`, `answer_reply`, `no_hits_reply`, `help_reply`, ...) returns a
`Reply`: paragraphs of styled spans. A front end renders it once, as Telegram HTML
(`Reply.html`, every piece of archive or user text escaped) or as plain text (`Reply.text`, for
the REPL, the CLI and Telegram's plain-text fallback). Both renderings fit a limit measured in
UTF-16 code units, as Telegram counts: paragraphs that do not fit are shortened at the end with
"…", cutting between code points of the raw text, so that a tag, an HTML entity or a surrogate
pair is never cut.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from bot.questions import MAX_CHARS, Outcome, Problem
from retrieval.models import Answer, Hit, Result

if TYPE_CHECKING:
    from retrieval.search import IndexInfo

TELEGRAM_MAX_CHARS = 4096  # per message, in UTF-16 code units
ELLIPSIS = "…"
EXAMPLE_QUESTION = "溧阳暑托班有多少家"
QUESTION_ECHO_CHARS = 40  # how much of a question is repeated back

MORE_BUTTON = "更多"
REFUSAL = "抱歉，这个机器人不对这个聊天开放。"
SLOW_DOWN = "问得太快了，请稍等一会儿再问。"
FAILURE = "抱歉，出了点问题，请稍后再试。"
STALE_BUTTON = "这个按钮已过期，请重新提问。"
NO_MORE = "没有更多段落了。"
TEXT_ONLY = "请用文字提问，例如：" + EXAMPLE_QUESTION
EMPTY_QUESTION = "请输入一个问题，例如：" + EXAMPLE_QUESTION
SHORTENED = f"问题太长，只按前 {MAX_CHARS} 个字搜索。"

Style = Literal["b", "i", "code"]


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with at most one style."""

    text: str
    style: Style | None = None


@dataclass(frozen=True, slots=True)
class Paragraph:
    """A body that may be shortened to fit, then a tail (e.g. the source) kept whole or dropped."""

    body: tuple[Span, ...]
    tail: tuple[Span, ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """Paragraphs to show, separated by blank lines; render with `html()` or `text()`."""

    paragraphs: tuple[Paragraph, ...] = field(default_factory=tuple)

    def html(self, *, limit: int | None = TELEGRAM_MAX_CHARS) -> str:
        """Telegram HTML: styles as <b>/<i>/<code>, all text escaped, within `limit`.

        The limit is measured on the HTML itself, never shorter than the text Telegram counts.
        """
        return _fit(self.paragraphs, _span_html, limit)

    def text(self, *, limit: int | None = None) -> str:
        """Plain text without styles, within `limit` when one is given."""
        return _fit(self.paragraphs, _span_text, limit)

    def terminal(self) -> str:
        """Text for a terminal: bold spans in ANSI bold (the REPL's highlight)."""
        return _fit(self.paragraphs, _span_ansi, None)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the measure of Telegram's message limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def answer_reply(result: Result, *, compact: bool = False) -> Reply:
    """The answer sentence, then the passages with their sources; compact: best passage only.

    A later page (its first hit is not rank 1) starts with a line naming the question.
    """
    paragraphs: list[Paragraph] = []
    hits = result.hits[:1] if compact else result.hits
    if hits and hits[0].rank > 1:
        paragraphs.append(_plain(f"「{_echo(result.question)}」的更多段落："))
    if result.answer is not None:
        paragraphs.extend(_answer(result.answer))
    paragraphs.extend(_passage(hit) for hit in hits)
    return Reply(tuple(paragraphs))


def outcome_reply(outcome: Outcome, *, compact: bool = False) -> Reply:
    """The reply to a question, whatever it was: how to ask, why nothing could be searched,
    that nothing was found, or the answer; a shortened question says so first."""
    question, result = outcome.question, outcome.result
    if question.problem is Problem.EMPTY:
        return notice_reply(EMPTY_QUESTION)
    if not outcome.searchable:
        reply = no_terms_reply(question.text)
    elif not result.hits:
        reply = no_hits_reply(question.text)
    else:
        reply = answer_reply(result, compact=compact)
    if question.shortened:
        return Reply((_plain(SHORTENED), *reply.paragraphs))
    return reply


def render_plain(result: Result) -> str:
    """Plain text of a result for the REPL and CLI: answer and passages, or the no-hits hint."""
    reply = answer_reply(result) if result.hits else no_hits_reply(result.question)
    return reply.text()


def render_html(
    result: Result, *, compact: bool = False, limit: int | None = TELEGRAM_MAX_CHARS
) -> str:
    """Telegram HTML of a result within `limit`: answer and passages, or the no-hits hint."""
    if not result.hits:
        return no_hits_reply(result.question).html(limit=limit)
    return answer_reply(result, compact=compact).html(limit=limit)


def no_hits_reply(question: str) -> Reply:
    """Nothing matched: say so and suggest fewer or other words."""
    return Reply(
        (
            _plain(f"没有找到与「{_echo(question)}」相关的内容。"),
            _plain("试试少用几个词，或换一种说法，用报道里可能出现的词来问。"),
        )
    )


def no_terms_reply(question: str) -> Reply:
    """Nothing in the question can be searched for: punctuation, emoji or only common words."""
    return Reply(
        (
            _plain(
                f"「{_echo(question)}」里没有可以搜索的词：标点、表情和“什么、多少、的”这类词都不算。"
            ),
            _plain(f"请加上人名、地名、单位或事情来问，例如：{EXAMPLE_QUESTION}"),
        )
    )


def help_reply(
    info: IndexInfo, *, bot_username: str | None = None, example: str = EXAMPLE_QUESTION
) -> Reply:
    """What the bot knows (archive name and sizes) and how to ask, with an example."""
    mention = f"@{bot_username}" if bot_username else "@机器人"
    return Reply(
        (
            Paragraph((Span("报纸档案问答", "b"),)),
            _plain(
                f"我读过档案「{info.archive}」：{info.files} 个文件，{info.articles} 篇文章，"
                f"共 {info.passages} 段文字。"
            ),
            Paragraph(
                (
                    Span("私聊时直接发问题，我会给出答案句和最相关的段落及出处。例如：\n"),
                    Span(example, "code"),
                )
            ),
            Paragraph(
                (
                    Span("在群里："),
                    Span(f"/ask {example}", "code"),
                    Span(f"，或 {mention} 加问题，或回复我的消息继续问。"),
                )
            ),
        )
    )


def usage_reply(*, example: str = EXAMPLE_QUESTION) -> Reply:
    """How to use /ask, for an /ask without a question."""
    return Reply((Paragraph((Span("用法："), Span(f"/ask {example}", "code"))),))


def notice_reply(text: str) -> Reply:
    """A one-paragraph notice (refusal, slow down, error message) shown as it is."""
    return Reply((_plain(text),))


def _plain(text: str) -> Paragraph:
    return Paragraph((Span(text),))


def _echo(question: str) -> str:
    """The question on one line, shortened for repeating it back."""
    flat = " ".join(question.split())
    if len(flat) <= QUESTION_ECHO_CHARS:
        return flat
    return flat[:QUESTION_ECHO_CHARS] + ELLIPSIS


def _passage(hit: Hit) -> Paragraph:
    """A numbered passage, then "— file, 《title》"."""
    source = hit.passage.source
    tail = [Span("\n— "), Span(source.file, "code")]
    if source.title:
        tail.append(Span(f"，《{source.title}》"))
    return Paragraph((Span(f"{hit.rank}. "), Span(hit.snippet_text)), tuple(tail))


def _answer(answer: Answer) -> list[Paragraph]:
    """答： and the exact answer, then its sentence with it in bold; or 答： and the sentence."""
    short = answer.short_text
    if answer.short is None or not short:
        return [Paragraph((Span("答：", "b"), *_highlighted(answer)))]
    sentence = _highlighted(replace(answer, highlights=(answer.short,)))
    return [Paragraph((Span("答：", "b"), Span(short, "b"))), Paragraph(tuple(sentence))]


def _highlighted(answer: Answer) -> list[Span]:
    """The sentence split into plain and bold spans along its highlights."""
    sentence = answer.sentence
    spans: list[Span] = []
    position = 0
    for start, end in _merged(answer.highlights, len(sentence)):
        if start > position:
            spans.append(Span(sentence[position:start]))
        spans.append(Span(sentence[start:end], "b"))
        position = end
    if position < len(sentence):
        spans.append(Span(sentence[position:]))
    return spans


def _merged(spans: Iterable[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """Spans clipped to [0, size], sorted, overlapping ones joined, empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(size, e)) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _span_html(span: Span) -> str:
    escaped = html.escape(span.text, quote=False)
    return f"<{span.style}>{escaped}</{span.style}>" if span.style and escaped else escaped


def _span_text(span: Span) -> str:
    return span.text


def _span_ansi(span: Span) -> str:
    return f"\x1b[1m{span.text}\x1b[0m" if span.style == "b" and span.text else span.text


Render = Callable[[Span], str]


def _fit(paragraphs: Sequence[Paragraph], render: Render, limit: int | None) -> str:
    """Paragraphs joined by blank lines, the first that does not fit shortened, the rest dropped.

    When not even a character of that paragraph fits, a "…" line says that something was cut.
    """
    rendered = [_join(p.body + p.tail, render) for p in paragraphs]
    whole = "\n\n".join(rendered)
    if limit is None or utf16_len(whole) <= limit:
        return whole
    room = limit - utf16_len("\n" + ELLIPSIS)  # something is cut: keep room to say so
    out = ""
    for paragraph, text in zip(paragraphs, rendered, strict=True):
        separator = "\n\n" if out else ""
        if utf16_len(out + separator + text) <= room:
            out += separator + text
            continue
        tail = _join(paragraph.tail, render)
        budget = limit - utf16_len(out + separator + tail + ELLIPSIS)
        body = _shortened(paragraph.body, render, budget)
        if body:
            return out + separator + body + ELLIPSIS + tail
        break
    marker = "\n" + ELLIPSIS if out else ELLIPSIS
    return out + marker if utf16_len(out + marker) <= limit else out


def _join(spans: Iterable[Span], render: Render) -> str:
    return "".join(render(span) for span in spans)


def _shortened(spans: Sequence[Span], render: Render, budget: int) -> str:
    """The longest prefix of the spans whose rendering fits `budget` UTF-16 units."""
    out: list[str] = []
    for span in spans:
        rendered = render(span)
        if utf16_len(rendered) <= budget:
            out.append(rendered)
            budget -= utf16_len(rendered)
            continue
        cut = _longest_prefix(span, render, budget)
        if cut:
            out.append(cut)
        break
    return "".join(out)


def _longest_prefix(span: Span, render: Render, budget: int) -> str:
    """Render the longest prefix of a span's text (whole code points) that fits `budget`."""
    low, high = 0, len(span.text)  # render(prefix of `low` chars) always fits
    while low < high:
        middle = (low + high + 1) // 2
        if utf16_len(render(Span(span.text[:middle], span.style))) <= budget:
            low = middle
        else:
            high = middle - 1
    return render(Span(span.text[:low], span.style)) if low else ""
