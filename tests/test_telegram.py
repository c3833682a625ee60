"""The Telegram bot end to end: the real python-telegram-bot application over real HTTP against
a fake Bot API server on 127.0.0.1, searching the bundled seeds."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot import format as fmt
from bot.errors import ConfigError
from bot.questions import prepare
from bot.settings import Settings
from bot.telegram import SEARCH_THREADS, MoreButton, run
from bot.telegram_infra import (
    Admission,
    Allowlist,
    ChatRateLimit,
    QuestionStore,
    Redactor,
    SecretFilter,
)
from retrieval.models import Result
from retrieval.search import IndexInfo, Searcher
from tests.fakes.bot_api import (
    BOT_USER,
    GROUP_CHAT,
    OTHER_USER,
    PRIVATE_CHAT,
    USER,
    Call,
    FakeBotApi,
    tags_used,
    utf16_len,
    visible_text,
)
from tests.fakes.harness import bot_process, stop, wait_call

EXAMPLE = fmt.EXAMPLE_QUESTION
ANSWER = "40多家"
SOURCE = "000_f1c283b55319c401.txt"
TITLE = "溧阳工会爱心暑托班点亮多彩假期"
BOT = f"@{BOT_USER['username']}"
REPO = Path(__file__).resolve().parent.parent
DEEP_LINK = re.compile(rf'<a href="https://t\.me/{BOT_USER["username"]}\?start=[\w-]{{24}}">')
PRIVATE = PRIVATE_CHAT["id"]
GROUP = GROUP_CHAT["id"]


class GatedSearcher:
    """The real searcher, except that questions starting with "慢" wait for a gate."""

    def __init__(self, inner: Searcher) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.waiting = threading.Event()

    @property
    def info(self) -> IndexInfo:
        """The real index's description."""
        return self.inner.info

    def ask(self, question: str, *, top_k: int = 3, offset: int = 0) -> Result:
        """Search, first waiting for the gate if the question is slow."""
        if question.startswith("慢"):
            self.waiting.set()
            if not self.gate.wait(10):
                raise TimeoutError("the gate was never opened")
            question = question[1:]
        return self.inner.ask(question, top_k=top_k, offset=offset)


def to_chat(chat_id: int) -> Callable[[Call], bool]:
    """Matches requests addressed to one chat."""
    return lambda call: call.params.get("chat_id") == chat_id


def replied_to(call: Call) -> int | None:
    """The message id a sendMessage replies to."""
    reply = call.params.get("reply_parameters") or {}
    return reply.get("message_id") or call.params.get("reply_to_message_id")


def shown(call: Call) -> str:
    """What the user sees of a sent message."""
    return visible_text(call.params["text"], call.params.get("parse_mode"))


def test_private_question_gets_answer_and_source(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    api.push_message(EXAMPLE)
    sent = api.wait_for("sendMessage", to_chat(PRIVATE))
    assert ANSWER in shown(sent) and SOURCE in shown(sent) and TITLE in shown(sent)
    assert sent.params["parse_mode"] == "HTML"
    assert sent.params["link_preview_options"] == {"is_disabled": True}
    assert "1. " in shown(sent) and "2. " in shown(sent)  # private chats get every passage
    action = api.calls("sendChatAction")[0]
    assert action.params == {"chat_id": PRIVATE, "action": "typing"}
    assert api.calls().index(action) < api.calls().index(sent)


def test_start_and_help_explain_the_archive(
    api: FakeBotApi, start_bot: Callable, seed_searcher: Searcher
) -> None:
    start_bot()
    commands = api.wait_for("setMyCommands").params["commands"]
    assert [c["command"] for c in commands] == ["start", "help", "ask"]
    api.push_message("/start")
    api.push_message("/help")
    calls = [api.wait_for("sendMessage", count=n) for n in (1, 2)]
    info = seed_searcher.info
    for call in calls:
        text = shown(call)
        assert f"「{info.archive}」" in text and f"{info.articles} 篇文章" in text
        assert EXAMPLE in text and "/ask" in text


def test_group_ask_with_bot_name_is_answered_as_compact_reply(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot()
    asked = api.push_message(f"/ask{BOT} {EXAMPLE}", chat=GROUP_CHAT)
    sent = api.wait_for("sendMessage", to_chat(GROUP))
    assert replied_to(sent) == asked["message_id"]
    text = shown(sent)
    assert ANSWER in text and "1. " in text and "2. " not in text
    button = sent.params["reply_markup"]["inline_keyboard"][0][0]
    assert button["text"] == fmt.MORE_BUTTON
    assert len(button["callback_data"].encode()) <= 64


def test_group_chatter_is_ignored_but_mentions_are_answered(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot()
    api.push_message(EXAMPLE, chat=GROUP_CHAT)
    api.push_message(f"/ask@some_other_bot {EXAMPLE}", chat=GROUP_CHAT)
    api.push_message("大家好", chat=GROUP_CHAT, user=OTHER_USER)
    asked = api.push_message(f"{BOT} {EXAMPLE}", chat=GROUP_CHAT)
    sent = api.wait_for("sendMessage", to_chat(GROUP))
    assert replied_to(sent) == asked["message_id"] and ANSWER in shown(sent)
    api.push_message("/help", chat=GROUP_CHAT)
    api.wait_for("sendMessage", to_chat(GROUP), count=2)
    assert len(api.calls("sendMessage")) == 2
    assert len(api.calls("sendChatAction")) == 1


def test_reply_to_the_bot_is_a_follow_up_question(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT)
    first = api.wait_for("sendMessage", to_chat(GROUP))
    bot_message = next(m for m in api.messages.values() if m["text"] == shown(first).strip())
    follow_up = api.push_message("暑托班开在哪里", chat=GROUP_CHAT, reply_to=bot_message)
    second = api.wait_for("sendMessage", to_chat(GROUP), count=2)
    assert replied_to(second) == follow_up["message_id"]
    assert "1. " in shown(second) and ".txt，《" in shown(second)
    human = api.push_message("说得对", chat=GROUP_CHAT, user=OTHER_USER)
    api.push_message("继续聊", chat=GROUP_CHAT, reply_to=human)  # a reply to a person: chatter
    api.push_message("/help", chat=GROUP_CHAT)
    assert "/ask" in shown(api.wait_for("sendMessage", to_chat(GROUP), count=3))
    assert len(api.calls("sendMessage")) == 3


def test_private_non_text_asks_for_text(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    sticker = {"file_id": "f1", "file_unique_id": "u1", "width": 1, "height": 1}
    message = {**api.make_message(""), "photo": [sticker]}
    del message["text"]
    api.push({"message": message})
    assert shown(api.wait_for("sendMessage")) == fmt.TEXT_ONLY


def test_empty_ask_gets_usage(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    asked = api.push_message(f"/ask{BOT}", chat=GROUP_CHAT)
    sent = api.wait_for("sendMessage")
    assert replied_to(sent) == asked["message_id"]
    assert shown(sent).startswith("用法：/ask ")
    assert not api.calls("sendChatAction")


@pytest.mark.parametrize(
    "question",
    [
        '溧阳暑托班<b>x</b>&amp;<a href="http://evil.x">有多少家',
        '<b>x</b>&amp;<a href="http://evil.x">',
    ],
)
def test_html_in_questions_is_escaped(api: FakeBotApi, start_bot: Callable, question: str) -> None:
    start_bot()
    api.push_message(question)
    sent = api.wait_for("sendMessage")
    assert sent.params["parse_mode"] == "HTML"
    assert tags_used(sent.params["text"]) <= {"b", "i", "code", "a"}
    links = re.findall(r"<a\b[^>]*>", sent.params["text"])  # only the sources' deep links
    assert all(DEEP_LINK.fullmatch(link) for link in links)
    if "没有找到" in shown(sent):
        assert question in shown(sent)  # echoed back, escaped: visible as typed


def test_very_long_question_is_answered_within_limits(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot()
    api.push_message(EXAMPLE + "啊" * 4991)
    sent = api.wait_for("sendMessage")
    assert utf16_len(sent.params["text"]) <= fmt.TELEGRAM_MAX_CHARS
    assert fmt.FAILURE not in shown(sent)


def test_chat_outside_allowlist_is_refused_without_archive_text(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot(allowed_chat_ids=[424242])
    api.push_message(EXAMPLE)
    api.push_message("/help")
    api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT)
    api.push_message(EXAMPLE, chat=GROUP_CHAT)  # chatter: not even refused
    api.push_callback({**api.push_message("x"), "from": BOT_USER}, "more:abc:1")
    refusals = [api.wait_for("sendMessage", count=n) for n in (1, 2, 3)]
    answered = api.wait_for("answerCallbackQuery")
    assert answered.params["text"] == fmt.REFUSAL
    for call in refusals:
        assert shown(call) == fmt.REFUSAL
    # the fourth private "x" is refused too; then nothing else was sent
    api.wait_for("sendMessage", count=4)
    time.sleep(0.2)
    texts = api.sent_texts()
    assert texts == [fmt.REFUSAL] * 4
    assert not api.calls("sendChatAction")


def test_more_button_shows_next_passages_and_stale_buttons_say_so(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot()
    api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT)
    first = api.wait_for("sendMessage", to_chat(GROUP))
    data = first.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    bot_message = next(m for m in api.messages.values() if m.get("reply_markup"))
    query = api.push_callback(bot_message, data)
    answered = api.wait_for("answerCallbackQuery")
    assert answered.params["callback_query_id"] == query
    page = api.wait_for("sendMessage", to_chat(GROUP), count=2)
    text = shown(page)
    assert f"「{EXAMPLE}」的更多段落" in text and "2. " in text and "1. " not in text
    assert replied_to(page) == bot_message["message_id"]

    stale = api.push_callback(bot_message, "more:gone1234:1")
    answer = api.wait_for("answerCallbackQuery", lambda c: c.params["callback_query_id"] == stale)
    assert answer.params["text"] == fmt.STALE_BUTTON
    api.push_callback(bot_message, "from-an-older-version")
    api.wait_for(
        "answerCallbackQuery", lambda c: c.params.get("text") == fmt.STALE_BUTTON, count=2
    )
    assert len(api.calls("sendMessage")) == 2


def test_plain_text_fallback_when_entities_are_rejected(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot()
    api.reject_entities_once()
    api.push_message(EXAMPLE)
    retry = api.wait_for("sendMessage", count=2)
    assert api.calls("sendMessage")[0].params["parse_mode"] == "HTML"
    assert "parse_mode" not in retry.params
    assert ANSWER in retry.params["text"] and SOURCE in retry.params["text"]
    assert "<b>" not in retry.params["text"]


@pytest.mark.filterwarnings("ignore:Deprecated since version v22.2")  # inside PTB's limiter
def test_rate_limited_send_is_retried(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    api.fail_next("sendMessage", status=429, description="Too Many Requests", retry_after=1)
    api.push_message(EXAMPLE)
    sent = api.wait_for("sendMessage", count=2)
    assert ANSWER in shown(sent)


def test_slow_search_does_not_stall_other_chats(
    api: FakeBotApi, start_bot: Callable, seed_searcher: Searcher
) -> None:
    searcher = GatedSearcher(seed_searcher)
    start_bot(searcher=searcher)
    api.push_message("慢" + EXAMPLE)
    assert searcher.waiting.wait(10)
    api.push_message(EXAMPLE, chat=GROUP_CHAT, user=OTHER_USER)
    api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT, user=OTHER_USER)
    group_answer = api.wait_for("sendMessage", to_chat(GROUP))
    assert ANSWER in shown(group_answer) and not api.calls("sendMessage")[:-1]
    searcher.gate.set()
    assert ANSWER in shown(api.wait_for("sendMessage", to_chat(PRIVATE)))


class CountingSearcher(GatedSearcher):
    """A `GatedSearcher` that records which threads search and how many at once."""

    def __init__(self, inner: Searcher) -> None:
        super().__init__(inner)
        self.threads: set[str] = set()
        self.running = 0
        self.lock = threading.Lock()

    def ask(self, question: str, *, top_k: int = 3, offset: int = 0) -> Result:
        """Search, counted while it runs."""
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.running += 1
        try:
            return super().ask(question, top_k=top_k, offset=offset)
        finally:
            with self.lock:
                self.running -= 1


def test_searches_run_in_a_bounded_pool_of_threads(
    api: FakeBotApi, start_bot: Callable, seed_searcher: Searcher
) -> None:
    searcher = CountingSearcher(seed_searcher)
    start_bot(searcher=searcher)
    chats = [{"id": 9000 + n, "type": "private"} for n in range(SEARCH_THREADS + 2)]
    for chat in chats:
        api.push_message("慢" + EXAMPLE, chat=chat, user={**USER, "id": chat["id"]})
    deadline = time.monotonic() + 20
    while searcher.running < SEARCH_THREADS and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # room for any further search to start, if the pool let it
    assert searcher.running == SEARCH_THREADS
    searcher.gate.set()
    for chat in chats:
        assert ANSWER in shown(api.wait_for("sendMessage", to_chat(chat["id"])))
    assert len(searcher.threads) == SEARCH_THREADS
    assert all(name.startswith("search") for name in searcher.threads), searcher.threads


def test_chat_over_rate_limit_is_told_to_slow_down_once(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot(chat_rate_limit=2)
    for _ in range(4):
        api.push_message(EXAMPLE)
    api.push_message(EXAMPLE, chat=GROUP_CHAT)  # other chats are not affected
    api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT)
    api.wait_for("sendMessage", to_chat(GROUP))
    api.wait_for("sendMessage", to_chat(PRIVATE), count=3)
    api.push_message("/help")
    api.wait_for("sendMessage", to_chat(PRIVATE), count=4)
    texts = api.sent_texts(PRIVATE)
    assert sum(ANSWER in visible_text(t, "HTML") for t in texts) == 2
    assert texts.count(fmt.SLOW_DOWN) == 1


def test_rate_limit_window_slides() -> None:
    now = [0.0]
    limit = ChatRateLimit(2, window=60, clock=lambda: now[0])
    assert [limit.check(1) for _ in range(4)] == [
        Admission.ANSWER,
        Admission.ANSWER,
        Admission.WARN,
        Admission.IGNORE,
    ]
    assert limit.check(2) is Admission.ANSWER
    now[0] = 60.5
    assert limit.check(1) is Admission.ANSWER
    assert ChatRateLimit(0).check(1) is Admission.ANSWER


def test_question_store_forgets_the_oldest() -> None:
    store = QuestionStore(size=2)
    keys = [store.put(prepare(q)) for q in ("一", "二", "三")]
    assert store.get(keys[0]) is None
    assert [store.get(k) for k in keys[1:]] == [prepare("二"), prepare("三")]
    assert all(len(f"more:{k}:9999".encode()) <= 64 for k in keys)


def test_unexpected_errors_are_reported_and_token_is_never_logged(
    api: FakeBotApi,
    start_bot: Callable,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    start_bot(log_questions=True)
    api.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    api.push_message(EXAMPLE)
    sent = api.wait_for("sendMessage", count=2)
    assert shown(sent) == fmt.FAILURE
    api.push_message(EXAMPLE)
    assert ANSWER in shown(api.wait_for("sendMessage", count=3))
    assert "Unexpected error" in caplog.text and "Chat not found" in caplog.text
    assert f"Question from Ann in chat {PRIVATE}: {EXAMPLE}" in caplog.text
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert api.token not in text
        assert api.token.split(":")[1] not in text


def test_questions_are_not_logged_by_default(
    api: FakeBotApi, start_bot: Callable, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    start_bot()
    api.push_message(EXAMPLE)
    api.wait_for("sendMessage")
    assert EXAMPLE not in caplog.text and "Ann" not in caplog.text


def test_missing_token_is_a_config_error(seed_settings: Settings) -> None:
    settings = seed_settings.model_copy(update={"telegram_token": None})
    with pytest.raises(ConfigError, match="ARCHIVE_BOT_TELEGRAM_TOKEN"):
        run(settings)


def test_unusable_webhook_secret_is_a_config_error(seed_settings: Settings) -> None:
    settings = seed_settings.model_copy(
        update={"telegram_token": SecretStr("1:x"), "webhook_secret": SecretStr("not ok!")}
    )
    with pytest.raises(ConfigError, match="ARCHIVE_BOT_WEBHOOK_SECRET"):
        run(settings, webhook_url="https://bot.example/hook")


def test_secret_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.secret_filter")
    caplog.handler.addFilter(SecretFilter(Redactor.of("TOKEN-123")))
    try:
        raise ValueError("url http://x/botTOKEN-123/getMe")
    except ValueError:
        logger.exception("failed at %s", "botTOKEN-123")
    assert "TOKEN-123" not in caplog.text and "<secret>" in caplog.text


def test_console_script_polls_answers_and_stops_on_sigterm(
    api: FakeBotApi, seed_searcher: Searcher, seed_settings: Settings, tmp_path: Path
) -> None:
    process = bot_process(api, seed_settings, tmp_path, "--drop-pending-updates")
    try:
        wait_call(api, process, "getUpdates")
        assert api.calls("deleteWebhook")[0].params.get("drop_pending_updates") is True
        api.push_message(EXAMPLE)
        wait_call(api, process, "sendChatAction", timeout=20)
    finally:
        out, err = stop(process)  # at once: the reply under way must still be sent
    assert process.returncode == 0, err
    assert ANSWER in shown(api.wait_for("sendMessage", timeout=1))
    assert api.confirmed_offset > api.last_update_id  # a restart would not answer it again
    assert api.token not in out + err and api.token.split(":")[1] not in out + err
    assert "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_console_script_serves_a_webhook_with_its_secret(
    api: FakeBotApi, seed_searcher: Searcher, seed_settings: Settings, tmp_path: Path
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hook"
    process = bot_process(
        api,
        seed_settings,
        tmp_path,
        f"--webhook-url={url}",
        "--listen=127.0.0.1",
        f"--port={port}",
        ARCHIVE_BOT_WEBHOOK_SECRET="s3cret-value",
    )
    try:
        hook = wait_call(api, process, "setWebhook")
        assert hook.params["url"] == url and hook.params["secret_token"] == "s3cret-value"
        body = json.dumps({"update_id": 1, "message": api.make_message(EXAMPLE)}).encode()
        assert _post(url, body, "wrong") == 403
        assert _post(url, body, "s3cret-value") == 200
        assert ANSWER in shown(wait_call(api, process, "sendMessage", timeout=20))
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert api.token not in out + err and "s3cret-value" not in out + err


def _post(url: str, body: bytes, secret: str) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Telegram-Bot-Api-Secret-Token": secret,
        },
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_more_button_data_round_trips_and_older_data_is_stale() -> None:
    button = MoreButton("abc-_12", 3)
    assert MoreButton.parse(button.data) == button and len(button.data.encode()) <= 64
    for data in ("from-an-older-version", "more:abc:", "more:a b:1", None, 42):
        assert MoreButton.parse(data) is None


def test_one_redactor_blanks_every_secret_and_the_allowlist_admits() -> None:
    redact = Redactor.of("123:ABC", None, "", "hook-secret")
    assert redact("bot123:ABC/getMe hook-secret") == "bot<secret>/getMe <secret>"
    assert Allowlist.of([]).admits(None) and Allowlist.of([]).admits(5)
    assert Allowlist.of([5]).admits(5) and not Allowlist.of([5]).admits(6)
    assert not Allowlist.of([5]).admits(None)
