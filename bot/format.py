"""Pipeline step "answer → Telegram / REPL / CLI": every text a front end shows, built purely.

A builder (`outcome_reply`, `answer_reply`, `no_hits_reply`, `help_reply`, ...) returns a
`Reply`: paragraphs of styled spans. A front end renders it once, as Telegram HTML
(`Reply.html`, every piece of archive or user text escaped) or as plain text (`Reply.text`, for
the REPL, the CLI and Telegram's plain-text fallback). Both renderings fit a limit measured in
UTF-16 code units, as Telegram counts: paragraphs that do not fit are shortened at the end with
"…", cutting between code points of the raw text, so that a tag, an HTML entity or a surrogate
pair is never cut.

Every snippet shows why it matched: the question's searched words (`Result.terms`, synonyms
included) are marked, bold in Telegram and 【in brackets】 in the REPL (`Reply.text(marks=True)`):
brackets survive copying, pipes and terminals without colour, and are how Chinese text sets
off a term, where ANSI bold would leave escape codes in anything that is not a terminal. A
source names its page's date and, when a `Link` is given (Telegram), links to the article in
the bot (`https://t.me/<bot>?start=<id>`), so a forwarded answer can be read on.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from bot.questions import MAX_CHARS, Outcome, Problem
from retrieval.ids import article_pages as cut_pages
from retrieval.models import Answer, Hit, Passage, Result, Source
from retrieval.tokenize import fold

if TYPE_CHECKING:
    from retrieval.reading import FullArticle
    from retrieval.search import IndexInfo

TELEGRAM_MAX_CHARS = 4096  # per message, in UTF-16 code units
ELLIPSIS = "…"
EXAMPLE_QUESTION = "溧阳暑托班有多少家"  # the one copy: help, usage and error texts use it
QUESTION_ECHO_CHARS = 40  # how much of a question is repeated back

MORE_BUTTON = "更多"
FULL_TEXT_BUTTON = "全文"
PREVIOUS_BUTTON = "上一页"
NEXT_BUTTON = "下一页"
ARTICLE_GONE = "档案已更新，这篇文章已改动或已不在档案里。请重新提问。"
INLINE_TITLE_CHARS = 60
MIN_MARKED_CHARS = 2  # one character (家, 年) is everywhere: marking it would mark noise
REFUSAL = "抱歉，这个机器人不对这个聊天开放。"
SLOW_DOWN = "问得太快了，请稍等一会儿再问。"
FAILURE = "抱歉，出了点问题，请稍后再试。"
STALE_BUTTON = "这个按钮已过期，请重新提问。"
NO_MORE = "没有更多段落了。"
TEXT_ONLY = "请用文字提问，例如：" + EXAMPLE_QUESTION
EMPTY_QUESTION = "请输入一个问题，例如：" + EXAMPLE_QUESTION
# The command line's errors are English and name the command to type.
EMPTY_COMMAND_LINE_QUESTION = (
    f'The question is empty. Ask e.g. archive-bot ask "{EXAMPLE_QUESTION}".'
)
SHORTENED = f"问题太长，只按前 {MAX_CHARS} 个字搜索。"

Style = Literal["b", "i", "code", "mark"]  # mark: a searched word (bold, or 【】 in text)
Link = Callable[[Passage], str]  # a passage → the URL its source links to


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with at most one style, or a link (`href`, then the style is not shown)."""

    text: str
    style: Style | None = None
    href: str | None = None


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

    def text(self, *, limit: int | None = None, marks: bool = False) -> str:
        """Plain text without styles, within `limit` when one is given; `marks`: searched
        words in 【】."""
        return _fit(self.paragraphs, _span_marked if marks else _span_text, limit)

    def terminal(self) -> str:
        """Text for a terminal (the REPL): searched words in 【】, bold spans (the exact
        answer) in ANSI bold."""
        return _fit(self.paragraphs, _span_marked_ansi, None)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the measure of Telegram's message limits."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def answer_reply(result: Result, *, compact: bool = False, link: Link | None = None) -> Reply:
    """The answer sentence, then the passages with their sources; compact: best passage only.

    A later page (its first hit is not rank 1) starts with a line naming the question. With
    `link`, each source links to its article.
    """
    paragraphs: list[Paragraph] = []
    hits = result.hits[:1] if compact else result.hits
    if _later_page(result):
        paragraphs.append(_plain(f"「{_echo(result.question)}」的更多段落："))
    if result.answer is not None:
        paragraphs.extend(_answer(result.answer))
    paragraphs.extend(_passage(hit, result.terms, link) for hit in hits)
    return Reply(tuple(paragraphs))


def outcome_reply(outcome: Outcome, *, compact: bool = False, link: Link | None = None) -> Reply:
    """The reply to a question, whatever it was: how to ask, why nothing could be searched,
    that nothing was found, or the answer (any page of it); a shortened question says so first,
    on its first page."""
    question, result = outcome.question, outcome.result
    if question.problem is Problem.EMPTY:
        return notice_reply(EMPTY_QUESTION)
    if not outcome.searchable:
        reply = no_terms_reply(question.text)
    elif not result.hits:
        reply = no_hits_reply(question.text)
    else:
        reply = answer_reply(result, compact=compact, link=link)
    if question.shortened and not _later_page(result):
        return Reply((_plain(SHORTENED), *reply.paragraphs))
    return reply


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


def _later_page(result: Result) -> bool:
    """Whether a result is a page after the first: its hits do not start at rank 1."""
    return bool(result.hits) and result.hits[0].rank > 1


def _plain(text: str) -> Paragraph:
    return Paragraph((Span(text),))


def _echo(question: str, chars: int = QUESTION_ECHO_CHARS) -> str:
    """The question on one line, shortened for repeating it back."""
    flat = " ".join(question.split())
    if len(flat) <= chars:
        return flat
    return flat[:chars] + ELLIPSIS


def article_reply(article: FullArticle, *, page: int = 1, pages: list[str] | None = None) -> Reply:
    """An article (or page `page` of `pages`, its text cut by `ids.article_pages`): its title,
    date and file, then the text; "2/5" when there are several pages."""
    shown = pages[page - 1] if pages else article.text
    heading = [Span(f"《{article.title}》" if article.title else "（无标题）", "b")]
    if pages and len(pages) > 1:
        heading.append(Span(f"  {page}/{len(pages)}"))
    where = [Span("\n"), Span(article.file, "code")]
    if article.date:
        where.append(Span(f"，{article.date.isoformat()}"))
    return Reply((Paragraph((*heading, *where)), _plain(shown.strip("\n"))))


def article_pages(article: FullArticle) -> list[str]:
    """The article's text cut into pages (`ids.article_pages`) whose `article_reply`, rendered
    as HTML, fits one Telegram message: room is kept for the heading and for escaping."""
    heading = utf16_len(article_reply(article, page=999, pages=[""] * 999).html(limit=None))
    escapes = 4 * sum(article.text.count(char) for char in "&<>")  # "&" → "&amp;": 4 more
    reserve = min(heading + escapes + 8, TELEGRAM_MAX_CHARS // 2)
    return cut_pages(article.text, reserve=reserve) or [""]


def inline_title(result: Result, hit: Hit) -> str:
    """What an inline result is listed as: the exact answer, else the answer sentence, if it
    comes from this passage; else the passage's start (to a line of `INLINE_TITLE_CHARS`)."""
    answer = result.answer
    text = None
    if answer is not None and answer.passage_id == hit.passage.passage_id:
        text = answer.short_text or answer.sentence
    return _echo(text or hit.snippet_text.lstrip(ELLIPSIS), INLINE_TITLE_CHARS)


def inline_description(hit: Hit) -> str:
    """The line under an inline result's title: file, title and date of its page."""
    source = hit.passage.source
    parts = [source.file, f"《{source.title}》" if source.title else "", _day(source)]
    return "，".join(part for part in parts if part)


def inline_reply(result: Result, hit: Hit, *, link: Link | None = None) -> Reply:
    """The message an inline result sends: the answer (when this passage holds it), the
    passage and its source."""
    answer = result.answer
    paragraphs = []
    if answer is not None and answer.passage_id == hit.passage.passage_id:
        paragraphs.extend(_answer(answer))
    paragraphs.append(_passage(hit, result.terms, link, numbered=False))
    return Reply(tuple(paragraphs))


def _day(source: Source) -> str:
    return source.date.isoformat() if source.date else ""


def _passage(
    hit: Hit, terms: Sequence[str], link: Link | None, *, numbered: bool = True
) -> Paragraph:
    """A numbered passage with its searched words marked, then "— file, 《title》, date"."""
    text = hit.snippet_text
    body = [Span(f"{hit.rank}. " if numbered else ""), *_marked(text, term_spans(text, terms))]
    return Paragraph(tuple(body), _source(hit.passage, link))


def _source(passage: Passage, link: Link | None) -> tuple[Span, ...]:
    """ "— file，《title》，YYYY-MM-DD", the file linking to the article when there is a link."""
    source = passage.source
    file = Span(source.file, href=link(passage)) if link else Span(source.file, "code")
    tail = [Span("\n— "), file]
    if source.title:
        tail.append(Span(f"，《{source.title}》"))
    if source.date:
        tail.append(Span(f"，{source.date.isoformat()}"))
    return tuple(tail)


def term_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Where the searched words (folded, at least `MIN_MARKED_CHARS` long) occur in a text.

    The text is folded like the question (traditional → simplified, full-width → ASCII) when
    folding keeps its length, so that 暑託班 in a page is marked for 暑托班.
    """
    folded = fold(text)
    haystack = folded if len(folded) == len(text) else text
    spans = []
    for term in set(terms):
        if len(term) < MIN_MARKED_CHARS:
            continue
        start = haystack.find(term)
        while start >= 0:
            spans.append((start, start + len(term)))
            start = haystack.find(term, start + len(term))
    return _merged(spans, len(text))


def _marked(text: str, spans: Iterable[tuple[int, int]]) -> list[Span]:
    """The text as plain spans and "mark" spans along `spans` (sorted, not overlapping)."""
    out: list[Span] = []
    position = 0
    for start, end in spans:
        if start > position:
            out.append(Span(text[position:start]))
        out.append(Span(text[start:end], "mark"))
        position = end
    if position < len(text) or not out:
        out.append(Span(text[position:]))
    return out


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
    if span.href is not None and escaped:
        return f'<a href="{html.escape(span.href, quote=True)}">{escaped}</a>'
    tag = "b" if span.style == "mark" else span.style
    return f"<{tag}>{escaped}</{tag}>" if tag and escaped else escaped


def _span_text(span: Span) -> str:
    return span.text


def _span_marked(span: Span) -> str:
    return f"【{span.text}】" if span.style == "mark" and span.text else span.text


def _span_marked_ansi(span: Span) -> str:
    if span.style == "b" and span.text:
        return f"\x1b[1m{span.text}\x1b[0m"
    return _span_marked(span)


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
        if utf16_len(render(replace(span, text=span.text[:middle]))) <= budget:
            low = middle
        else:
            high = middle - 1
    return render(replace(span, text=span.text[:low])) if low else ""
