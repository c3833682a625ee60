"""Pure reply formatting: plain text, Telegram HTML, escaping and the 4096 UTF-16 limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from bot import format as fmt
from bot.questions import Outcome, Question
from retrieval.models import Answer, Hit, Passage, Result, Source
from retrieval.reading import FullArticle
from retrieval.search import IndexInfo
from tests.fakes.bot_api import tags_used, visible_text

FILE = "000_f1c283b55319c401.txt"
TITLE = "溧阳工会爱心暑托班点亮多彩假期"
SENTENCE = "今年全市共开设爱心暑托班40多家，惠及职工子女2000余人。"


def hit(rank: int, text: str, *, file: str = FILE, title: str | None = TITLE) -> Hit:
    source = Source(file=file, title=title, paragraph=rank, start=0, end=len(text))
    return Hit(rank, 10.0 / rank, Passage(f"{file}#1.{rank}", text, source))


def result(
    *hits: Hit, sentence: str | None = SENTENCE, spans: tuple[tuple[int, int], ...] = ((12, 16),)
) -> Result:
    answer = Answer(sentence, spans, hits[0].passage.passage_id) if sentence and hits else None
    return Result(fmt.EXAMPLE_QUESTION, answer, hits)


def reply_for(result: Result, *, compact: bool = False) -> fmt.Reply:
    """The reply every front end shows for a searched question's result (any page of it)."""
    return fmt.outcome_reply(Outcome(Question(result.question), result), compact=compact)


SAMPLE = result(
    hit(1, SENTENCE), hit(2, "第二段：暑托班开设在社区。"), hit(3, "第三段。", title=None)
)
INFO = IndexInfo(archive="seeds", files=5, articles=23, passages=180)


def test_plain_text_has_answer_then_numbered_passages_with_sources() -> None:
    text = reply_for(SAMPLE).text()
    lines = text.splitlines()
    assert lines[0] == f"答：{SENTENCE}"
    assert f"1. {SENTENCE}" in lines
    assert f"— {FILE}，《{TITLE}》" in lines
    assert text.index("1. ") < text.index("2. ") < text.index("3. ")
    assert text.endswith(f"3. 第三段。\n— {FILE}")  # no title, no 《》
    assert "<" not in text


def test_html_bolds_highlights_and_names_sources() -> None:
    text = reply_for(SAMPLE).html()
    assert "<b>40多家</b>" in text
    assert f"<code>{FILE}</code>，《{TITLE}》" in text
    assert tags_used(text) <= {"b", "i", "code"}
    assert visible_text(text, "HTML").startswith(f"答：{SENTENCE}")


def test_a_short_answer_leads_and_is_bold_in_its_sentence() -> None:
    answer = Answer(SENTENCE, ((24, 28),), "x#1.1", short=(12, 16))
    short = Result("溧阳暑托班有多少家", answer, SAMPLE.hits)
    lines = fmt.answer_reply(short).text().splitlines()
    assert lines[:3] == ["答：40多家", "", SENTENCE]
    html = fmt.answer_reply(short).html()
    assert html.startswith("<b>答：</b><b>40多家</b>")
    assert f"{SENTENCE[:12]}<b>40多家</b>{SENTENCE[16:]}" in html  # only the short span is bold
    terminal = fmt.answer_reply(short).terminal()
    assert "\x1b[1m40多家\x1b[0m" in terminal and "<b>" not in terminal


def test_html_escapes_archive_and_user_text() -> None:
    nasty = '<a href="x">&amp;</a> & <script>'
    sample = result(
        hit(1, nasty, title="<b>标题</b>", file="a&b.txt"),
        sentence=f"答案{nasty}",
        spans=((0, 2),),
    )
    sample = Result("<i>问题</i>", sample.answer, sample.hits)
    text = reply_for(sample).html()
    assert tags_used(text) <= {"b", "code"}
    shown = visible_text(text, "HTML")
    assert nasty in shown and "《<b>标题</b>》" in shown and "a&b.txt" in shown
    later = Result("<i>问题</i>", None, (hit(4, nasty),))
    assert "「<i>问题</i>」" in visible_text(reply_for(later).html(), "HTML")
    no_hits = reply_for(Result("<i>问题</i>&amp;", None, ())).html()
    assert "「<i>问题</i>&amp;」" in visible_text(no_hits, "HTML")


def test_highlights_are_merged_clipped_and_sorted() -> None:
    sample = result(hit(1, "x"), sentence="abcdef", spans=((4, 99), (0, 2), (1, 3), (5, 5)))
    assert reply_for(sample).html().startswith("<b>答：</b><b>abc</b>d<b>ef</b>")


def test_compact_has_answer_and_best_passage_only() -> None:
    text = reply_for(SAMPLE, compact=True).html()
    assert "<b>40多家</b>" in text and "1. " in text
    assert "2. " not in text and "第二段" not in text


def test_later_page_names_the_question_and_keeps_ranks() -> None:
    page = Result(fmt.EXAMPLE_QUESTION, None, (hit(4, "第四段"), hit(5, "第五段")))
    text = reply_for(page).text()
    assert text.startswith(f"「{fmt.EXAMPLE_QUESTION}」的更多段落：")
    assert "4. 第四段" in text and "5. 第五段" in text


def test_no_hits_suggests_other_words() -> None:
    text = reply_for(Result("火星移民计划", None, ())).text()
    assert "火星移民计划" in text
    assert "少用几个词" in text and "换一种说法" in text


def test_long_question_is_shortened_when_echoed() -> None:
    text = fmt.no_hits_reply("问" * 5000).html()
    assert "问" * fmt.QUESTION_ECHO_CHARS + fmt.ELLIPSIS in text
    assert fmt.utf16_len(text) < 300


def test_help_names_archive_sizes_and_example() -> None:
    text = fmt.help_reply(INFO, bot_username="archive_test_bot").html()
    shown = visible_text(text, "HTML")
    assert "「seeds」" in shown and "23 篇文章" in shown and "5 个文件" in shown
    assert f"<code>{fmt.EXAMPLE_QUESTION}</code>" in text
    assert "/ask" in shown and "@archive_test_bot" in shown
    assert f"/ask {fmt.EXAMPLE_QUESTION}" in fmt.usage_reply().text()


def test_utf16_length_counts_surrogate_pairs() -> None:
    assert fmt.utf16_len("a中") == 2
    assert fmt.utf16_len("𠀀") == 2
    assert fmt.utf16_len("😀x") == 3


def test_long_results_fit_telegram_limit_and_say_so() -> None:
    body = ("暑托班&<𠀀😀>" * 200)[:900]
    sample = result(*(hit(rank, body) for rank in range(1, 6)))
    text = reply_for(sample).html()
    assert fmt.utf16_len(text) <= fmt.TELEGRAM_MAX_CHARS
    shown = visible_text(text, "HTML")
    assert "1. " in shown and "2. " in shown and "3. " not in shown
    assert f"{fmt.ELLIPSIS}\n— {FILE}" in shown  # the cut passage keeps its source
    plain = fmt.answer_reply(sample).text(limit=fmt.TELEGRAM_MAX_CHARS)
    assert fmt.utf16_len(plain) <= fmt.TELEGRAM_MAX_CHARS
    assert plain == plain.encode("utf-16-le", "strict").decode("utf-16-le")


def test_an_answer_longer_than_the_limit_is_cut_too() -> None:
    sentence = "长" * 5000
    sample = result(hit(1, "段落"), sentence=sentence, spans=((10, 4990),))
    text = reply_for(sample).html()
    assert fmt.utf16_len(text) <= fmt.TELEGRAM_MAX_CHARS
    assert text.endswith(f"</b>{fmt.ELLIPSIS}")
    assert tags_used(text) == {"b"}


alphabet = st.sampled_from([*"暑托班ab &<>\"'\n", "𠀀", "😀", "&amp;", "<b>", "é"])
texts = st.lists(alphabet, max_size=120).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    sentence=texts,
    passages=st.lists(texts.filter(str.strip), min_size=1, max_size=4),
    title=st.none() | texts,
    spans=st.lists(st.tuples(st.integers(-3, 130), st.integers(-3, 130)), max_size=4),
    limit=st.integers(1, 700),
)
def test_any_reply_fits_and_parses(
    sentence: str,
    passages: list[str],
    title: str | None,
    spans: list[tuple[int, int]],
    limit: int,
) -> None:
    hits = tuple(hit(rank, text, title=title) for rank, text in enumerate(passages, 1))
    sample = result(*hits, sentence=sentence or None, spans=tuple(spans))
    reply = fmt.answer_reply(sample)
    text = reply.html(limit=limit)
    assert fmt.utf16_len(text) <= limit
    assert tags_used(text) <= {"b", "code"}
    shown = visible_text(text, "HTML")
    full = visible_text(reply.html(limit=None), "HTML")
    if text == reply.html(limit=None):
        assert shown == reply.text()
    else:
        assert fmt.ELLIPSIS in shown
        head = shown.split(fmt.ELLIPSIS)[0]
        assert full.startswith(head)
    plain = reply.text(limit=limit)
    assert fmt.utf16_len(plain) <= limit
    assert full.startswith(plain.split(fmt.ELLIPSIS)[0])


def test_a_shortened_question_says_so_on_its_first_page_only() -> None:
    question = Question(fmt.EXAMPLE_QUESTION, shortened=True)
    first = fmt.outcome_reply(Outcome(question, SAMPLE)).text()
    later = Result(question.text, None, (hit(4, "第四段"),))
    assert first.startswith(fmt.SHORTENED)
    assert fmt.SHORTENED not in fmt.outcome_reply(Outcome(question, later)).text()


def test_searched_words_are_marked_and_sources_dated_and_linked() -> None:
    dated = hit(1, "溧阳的暑托班開設在社區,家长很满意。<b>")
    dated = replace(
        dated,
        passage=replace(
            dated.passage, source=replace(dated.passage.source, date=date(2023, 8, 16))
        ),
    )
    marked = Result("溧阳暑托班开设", None, (dated,), terms=("溧阳", "暑托班", "开设", "家"))
    reply = fmt.answer_reply(marked, link=lambda passage: 'https://t.me/bot?start=x&x="')
    text = reply.text(marks=True)
    # Folded like the question (開設 → 开设), touching words as one mark, one character never.
    assert "【溧阳】的【暑托班開設】在社區" in text and "【家】" not in text
    assert "，2023-08-16" in text and "【" not in reply.text()
    html = reply.html()
    assert "<b>溧阳</b>" in html and "&lt;b&gt;" in html
    assert '<a href="https://t.me/bot?start=' in html and "&amp;x=&quot;" in html
    assert tags_used(html) <= {"b", "a"}


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="溧阳&<>\n。ab𝄞", min_size=1, max_size=20_000))
def test_article_pages_fit_one_message_each_and_lose_nothing(text: str) -> None:
    article = FullArticle("A" * 16, "dir/" + "长" * 200 + ".txt", "标题" * 20, None, text)
    pages = fmt.article_pages(article)
    for number in range(1, len(pages) + 1):
        html = fmt.article_reply(article, page=number, pages=pages).html(limit=None)
        assert fmt.utf16_len(visible_text(html, "HTML")) <= fmt.TELEGRAM_MAX_CHARS
        assert fmt.utf16_len(html) <= fmt.TELEGRAM_MAX_CHARS  # never cut by the fitting
    assert "".join(pages) == text
