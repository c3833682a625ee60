"""Bad questions get a sensible reply everywhere (CLI, REPL, Telegram) and the next question is
answered: empty, punctuation, very long, emoji, zero-width, HTML and Markdown look-alikes, mixed
scripts, stopwords, traditional characters, full-width digits, bare numbers; plus a property
test over random Unicode for search and formatting."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import format as fmt
from bot.engine import ask
from bot.questions import MAX_CHARS, Problem, clean, prepare
from bot.repl import ReplState, answer_line
from bot.settings import Settings
from retrieval.search import Searcher
from tests.fakes.bot_api import GROUP_CHAT, FakeBotApi, tags_used, utf16_len, visible_text
from tests.fakes.harness import command

EXAMPLE = fmt.EXAMPLE_QUESTION
ANSWER = "40多家"
NO_TERMS = "没有可以搜索的词"
NO_HITS = "没有找到"
LONG = EXAMPLE + "啊" * (10_000 - len(EXAMPLE))

# name → (question, what the reply must be: "empty", "no terms", "answer", "shortened" or
# "any" (searched: an answer or "nothing found", depending on the archive)).
CASES: dict[str, tuple[str, str]] = {
    "empty": ("", "empty"),
    "whitespace": (" \t \u3000 ", "empty"),
    "zero-width only": ("\u200b\u200c\u200d\ufeff\u2060", "empty"),
    "punctuation": ("？？？！！…。，、", "no terms"),
    "33 dashes": ("-" * 33, "no terms"),
    "emoji": ("😀👍🏽👨‍👩‍👧🇨🇳", "no terms"),
    "markdown": ("*_[]()`~>#", "no terms"),
    "stopwords": ("多少 的 了 吗 请问 哪些", "no terms"),
    "10,000 characters": (LONG, "shortened"),
    "zero-width inside": ("溧\u200b阳暑\u200d托班有\ufeff多少家", "answer"),
    "bidi override": ("\u202e溧阳暑托班有多少家\u202c", "answer"),
    "control characters": ("\x00\x07溧阳暑托班\x1b有多少家", "answer"),
    "traditional": ("溧陽暑託班有多少家", "answer"),
    "mixed Latin": ("溧阳 summer camp 暑托班 how many 多少家", "answer"),
    "html bold": ("<b>", "any"),
    "html end tag": ("</a>", "any"),
    "html entity": ("&amp;", "any"),
    "html around a question": (f"<b>{EXAMPLE}</b>&amp;", "answer"),
    "full-width digits": ("２０２３", "any"),
    "bare number": ("40", "any"),
    "latin only": ("hello world", "any"),
}
QUESTIONS = [question for question, _ in CASES.values()]
ONE_LINE = [(q, kind) for q, kind in CASES.values() if "\n" not in q and kind != "empty"]


def check_reply(text: str, kind: str) -> None:
    """The visible reply fits what the question deserves."""
    if kind == "empty":
        assert EXAMPLE in text and ANSWER not in text
    elif kind == "no terms":
        assert NO_TERMS in text and EXAMPLE in text  # says why, and shows how to ask
    elif kind == "answer":
        assert ANSWER in text
    elif kind == "shortened":
        assert text.startswith(fmt.SHORTENED) and ANSWER in text
    else:
        assert text.startswith("答：") or "1. " in text or NO_HITS in text
    assert fmt.FAILURE not in text


# The shared step: bot.questions ----------------------------------------------------------------


@pytest.mark.parametrize(("question", "kind"), CASES.values(), ids=CASES.keys())
def test_prepare_sorts_out_what_cannot_be_searched(question: str, kind: str) -> None:
    prepared = prepare(question)
    if kind == "empty":
        assert prepared.problem is Problem.EMPTY and prepared.text == ""
    elif kind == "no terms" and not any(char.isalnum() for char in question):
        assert prepared.problem is Problem.NO_WORDS
    else:
        assert prepared.problem is None
    assert len(prepared.text) <= MAX_CHARS
    assert prepared.shortened is (kind == "shortened")
    assert prepared.text == prepared.text.strip() and "\u200b" not in prepared.text


def test_clean_drops_invisible_characters_and_folds_whitespace() -> None:
    assert clean("\u202e溧阳\u200b\n\n暑托班\t\x00 ") == "溧阳 暑托班"
    assert clean("\ud800溧阳\udcff") == "溧阳"  # lone surrogates (undecodable bytes)
    assert clean("２０２３") == "２０２３"  # kept as typed; the tokenizer folds it


@pytest.mark.parametrize(("question", "kind"), CASES.values(), ids=CASES.keys())
def test_every_bad_question_gets_a_sensible_reply(
    seed_searcher: Searcher, question: str, kind: str
) -> None:
    outcome = ask(seed_searcher, prepare(question), top_k=3)
    reply = fmt.outcome_reply(outcome)
    check_reply(reply.text(), kind)
    html = reply.html()
    assert utf16_len(html) <= fmt.TELEGRAM_MAX_CHARS
    assert tags_used(html) <= {"b", "code"}
    check_reply(visible_text(html, "HTML"), kind)


@pytest.mark.parametrize("question", ["什么", "是什么", "什么 多少"])
def test_question_words_alone_have_nothing_to_search(
    seed_searcher: Searcher, question: str
) -> None:
    outcome = ask(seed_searcher, prepare(question), top_k=3)
    check_reply(fmt.outcome_reply(outcome).text(), "no terms")


def test_a_question_that_finds_nothing_says_so(seed_searcher: Searcher) -> None:
    outcome = ask(seed_searcher, prepare("xylophone quixotic zebra"), top_k=3)
    assert outcome.searchable and not outcome.result.hits
    assert NO_HITS in fmt.outcome_reply(outcome).text()


# Property: random Unicode never breaks search or formatting ------------------------------------

SEED_CHARS = "溧阳暑托班有多少家古雷开发区反诈宣传场次年月日的了吗什么２０２3。，？！"
questions = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=60),
    st.text(st.sampled_from([*SEED_CHARS, " ", "<", "&", "😀", "\u200b", "\ud800"]), max_size=80),
    st.text(st.sampled_from([*SEED_CHARS, "a", " "]), min_size=900, max_size=1200),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(question=questions, compact=st.booleans(), offset=st.sampled_from([0, 0, 3]))
def test_any_question_is_searched_and_formatted_safely(
    seed_searcher: Searcher, question: str, compact: bool, offset: int
) -> None:
    outcome = ask(seed_searcher, prepare(question), top_k=4, offset=offset)
    reply = fmt.outcome_reply(outcome, compact=compact)
    html = reply.html()
    assert utf16_len(html) <= fmt.TELEGRAM_MAX_CHARS
    assert tags_used(html) <= {"b", "code"}  # parses as Telegram parses: tags, entities
    assert visible_text(html, "HTML").strip()  # Telegram refuses an empty message
    text = reply.text(limit=fmt.TELEGRAM_MAX_CHARS)
    assert text.strip() and utf16_len(text) <= fmt.TELEGRAM_MAX_CHARS
    text.encode("utf-8")  # printable by the CLI and the REPL (no lone surrogates)


# The reader on odd archives: no sentence punctuation, one sentence, numbers only ----------------

ODD_FILES = {
    "no_punctuation.txt": "暑托班报道\n\n" + "溧阳还有四十多家暑托班 开设在社区 孩子很开心 " * 30,
    "one_sentence.txt": "溧阳暑托班有40多家",
    "numbers.txt": "统计\n\n2023 2024 40 445 127\n",
    "filler_1.txt": "图书馆延长开放\n\n市图书馆从下月起每晚开放到九点,方便读者借阅。\n",
    "filler_2.txt": "公园新增步道\n\n滨江公园新建健身步道五公里,市民可免费使用。\n",
}


@pytest.fixture(scope="module")
def odd_searcher(tmp_path_factory: pytest.TempPathFactory) -> Searcher:
    """A searcher (with the reader, as every front end has) over an archive of odd files."""
    archive = tmp_path_factory.mktemp("odd-archive")
    for name, text in ODD_FILES.items():
        (archive / name).write_text(text, encoding="utf-8")
    from bot.engine import open_searcher

    settings = Settings(archive_dir=archive, index_dir=tmp_path_factory.mktemp("odd-index"))
    return open_searcher(settings)


ODD_QUESTIONS = ["溧阳有几家暑托班？", "哪一年？", "40", "谁？", "暑托班 暑托班 暑托班"]


@pytest.mark.parametrize("question", [*QUESTIONS, *ODD_QUESTIONS])
def test_the_reader_meets_odd_archives_calmly(odd_searcher: Searcher, question: str) -> None:
    assert odd_searcher.reader is not None
    outcome = ask(odd_searcher, prepare(question), top_k=3)
    answer = outcome.result.answer
    if answer is not None and answer.short is not None:
        assert answer.short_text and answer.short_text in answer.sentence
    text = fmt.outcome_reply(outcome).text()
    assert text.strip() and fmt.FAILURE not in text


# CLI -------------------------------------------------------------------------------------------


def cli(args: list[str], settings: Settings, stdin: str | bytes | None = None):
    """Run the console script; stdout and stderr as text."""
    environ = {
        **os.environ,
        "ARCHIVE_BOT_INDEX_DIR": str(settings.resolved_index_dir),
        "ARCHIVE_BOT_ARCHIVE_DIR": str(settings.archive_dir),
    }
    done = subprocess.run(
        [*command(), *args],
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        env=environ,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.parametrize("question", ["", "  ", "\u200b"], ids=["empty", "blank", "zero-width"])
def test_cli_empty_question_is_an_error(seed_settings: Settings, question: str) -> None:
    code, out, err = cli(["ask", "--json", question], seed_settings)
    assert code == 2 and out == ""
    assert "empty" in err and EXAMPLE in err and "Traceback" not in err


def test_cli_json_lines_answer_every_bad_question_in_order(seed_settings: Settings) -> None:
    lines = [q for q, _ in ONE_LINE] + ["\u200b", EXAMPLE]
    stdin = "\n".join(lines).encode() + b"\n\xff\xfe\xb6\xf4 not UTF-8\n" + EXAMPLE.encode()
    code, out, err = cli(["ask", "--json", "-"], seed_settings, stdin=stdin)
    assert code == 0 and "Traceback" not in err, err
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["question"] for r in results[: len(lines)]] == lines
    assert len(results) == len(lines) + 2
    for result, (_, kind) in zip(results, ONE_LINE, strict=False):
        assert set(result) == {"question", "answer", "short_answer", "passages"}
        if kind == "no terms":
            assert result["answer"] is None and result["passages"] == []
            assert result["short_answer"] is None
        if kind == "answer":
            assert ANSWER in result["answer"]
    assert "empty" in results[len(ONE_LINE)]["error"]  # the zero-width line
    assert ANSWER in results[len(ONE_LINE) + 1]["answer"]  # and the next one is answered
    assert "\ufffd" in results[-2]["question"]  # bytes that are not UTF-8 are replaced
    assert ANSWER in results[-1]["answer"]


def test_cli_question_with_no_hits_is_json_without_passages(seed_settings: Settings) -> None:
    code, out, err = cli(["ask", "--json", "xylophone quixotic zebra"], seed_settings)
    assert code == 0, err
    expected = {
        "question": "xylophone quixotic zebra",
        "answer": None,
        "short_answer": None,
        "passages": [],
    }
    assert json.loads(out) == expected


def test_cli_plain_replies_for_unsearchable_and_overlong_questions(
    seed_settings: Settings,
) -> None:
    code, out, err = cli(["ask", "-"], seed_settings, stdin=f"？？？\n{LONG}\n")
    assert code == 0 and "Traceback" not in err, err
    check_reply(out, "no terms")
    assert fmt.SHORTENED in out and ANSWER in out


# REPL ------------------------------------------------------------------------------------------


def test_repl_answer_line_replies_to_every_bad_question(seed_searcher: Searcher) -> None:
    state = ReplState()
    for question, kind in CASES.values():
        reply, state = answer_line(question, state, seed_searcher, 3)
        check_reply(reply, kind)
    reply, state = answer_line(EXAMPLE, state, seed_searcher, 1)
    assert ANSWER in reply
    reply, state = answer_line(":more", state, seed_searcher, 1)
    assert "2. " in reply


def test_repl_survives_bad_questions_and_answers_the_next(seed_settings: Settings) -> None:
    lines = "\n".join([q for q, _ in ONE_LINE] + ["\u200b"]).encode()
    stdin = lines + b"\n\xff\xfe not UTF-8\n" + f"{EXAMPLE}\n:quit\n".encode()
    code, out, err = cli(["repl"], seed_settings, stdin=stdin)
    assert code == 0 and "Traceback" not in err, err
    assert out.count(NO_TERMS) >= 5 and "! " not in out
    assert fmt.EMPTY_QUESTION in out  # the zero-width line
    assert out.rindex(ANSWER) > out.rindex(fmt.EMPTY_QUESTION)  # the last question is answered


# Telegram --------------------------------------------------------------------------------------


def test_telegram_replies_once_to_each_bad_question_then_answers(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(chat_rate_limit=0)  # more questions than the default 20 a minute
    cases = [(q, kind) for q, kind in CASES.values() if q]  # Telegram never delivers ""
    for question, _ in cases:
        api.push_message(question)
    api.push_message(EXAMPLE)
    sent = api.wait_delivered("sendMessage", count=len(cases) + 1, timeout=30)
    assert len(api.calls("sendMessage")) == len(cases) + 1  # none refused, none resent
    assert all(call.params.get("parse_mode") == "HTML" for call in sent)
    # Replies may come in another order (questions are answered concurrently): count kinds.
    got = Counter(kind_of(visible_text(call.params["text"], "HTML")) for call in sent)
    wanted = Counter(kind for _, kind in cases) + Counter(["answer"])
    assert got["failure"] == 0 and got.total() == len(cases) + 1
    assert all(got[kind] == wanted[kind] for kind in ("empty", "no terms", "shortened"))
    assert got["answer"] >= wanted["answer"]  # an "any" question may find the answer too


def kind_of(text: str) -> str:
    """What kind of reply a text is (the inverse of `check_reply`)."""
    if fmt.FAILURE in text or fmt.SLOW_DOWN in text:
        return "failure"
    if text.startswith(fmt.SHORTENED):
        return "shortened"
    if NO_TERMS in text:
        return "no terms"
    if text == fmt.EMPTY_QUESTION:
        return "empty"
    return "answer" if ANSWER in text else "any"


def test_telegram_group_bad_questions(api: FakeBotApi, start_bot: Callable[..., Settings]) -> None:
    start_bot()
    bot = "@archive_test_bot"
    api.push_message("/ask ？？？", chat=GROUP_CHAT)
    api.push_message(f"{bot} \u200b", chat=GROUP_CHAT)
    api.push_message(f"/ask {'-' * 33}", chat=GROUP_CHAT)
    sent = api.wait_delivered("sendMessage", count=3)
    texts = sorted(visible_text(call.params["text"], "HTML") for call in sent)
    assert sum(NO_TERMS in text for text in texts) == 2
    assert sum(text.startswith("用法：/ask ") for text in texts) == 1
    assert not api.calls("sendChatAction")  # nothing was searched


def test_telegram_question_with_newlines_and_long_text_is_answered(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot()
    api.push_message("溧阳\n\n暑托班\n有多少家")
    api.push_message(EXAMPLE + "啊" * 4000)  # the longest text Telegram delivers
    sent = api.wait_delivered("sendMessage", count=2)
    texts = [visible_text(call.params["text"], "HTML") for call in sent]
    assert all(ANSWER in text for text in texts)
    assert sum(text.startswith(fmt.SHORTENED) for text in texts) == 1
