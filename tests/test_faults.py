"""Faults of the Bot API through the fake server: 429 with retry_after, 5xx answers, dropped
connections and timeouts, on sends, button answers and getUpdates; and SIGTERM during a burst.
The bot retries; every question gets exactly one answer and no update is lost."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

import bot.telegram_infra
from bot import format as fmt
from bot.settings import Settings
from tests.fakes.bot_api import Call, FakeBotApi, visible_text
from tests.fakes.harness import bot_process, stop, wait_started
from tests.fakes.load import group, replied_to

# PTB's AIORateLimiter reads RetryAfter.retry_after as a number, deprecated since 22.2.
pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2")

EXAMPLE = fmt.EXAMPLE_QUESTION
ANSWER = "40多家"
QUESTIONS = (EXAMPLE, "古雷开发区开展了多少场次反诈宣传", "溧陽暑託班有多少家", "暑托班开在哪里")
TIMEOUT = 0.5  # the bot's Bot API timeout in these tests: a stalled request fails fast


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter pauses between network retries, so that the tests stay quick."""
    monkeypatch.setattr(bot.telegram_infra, "NETWORK_RETRY_DELAYS", (0.05, 0.1, 0.2, 0.4))


def ask_in_groups(api: FakeBotApi, questions: Iterable[str], *, chats: int = 1) -> list[int]:
    """Push `/ask question` messages, spread over `chats` groups; their message ids."""
    return [
        api.push_message(f"/ask {question}", chat=group(i % chats))["message_id"]
        for i, question in enumerate(questions)
    ]


def assert_answered_once(
    api: FakeBotApi, asked: list[int], *, timeout: float = 20.0, settle: float = 0.3
) -> list[Call]:
    """Wait until every asked message has an answer; then check none got two. The answers."""
    wanted = set(asked)
    answered = api.wait_delivered(
        "sendMessage", lambda c: replied_to(c) in wanted, count=len(asked), timeout=timeout
    )
    time.sleep(settle)  # a duplicate would arrive now
    answers = [c for c in api.delivered("sendMessage") if replied_to(c) in wanted]
    per_question = {message: 0 for message in asked}
    for call in answers:
        per_question[replied_to(call)] += 1  # type: ignore[index]
    assert sorted(set(per_question.values())) == [1], per_question
    return answered


def shown(call: Call) -> str:
    """What the user sees of a sent message."""
    return visible_text(call.params["text"], call.params.get("parse_mode"))


SEND_FAULTS: dict[str, tuple[Callable[[FakeBotApi, str], None], int]] = {
    "429 retry_after": (
        lambda api, m: api.fail_next(m, status=429, description="Flood", retry_after=1),
        1,
    ),
    "500": (
        lambda api, m: api.fail_next(m, status=500, description="Internal Server Error", times=2),
        2,
    ),
    "502": (lambda api, m: api.fail_next(m, status=502, description="Bad Gateway", times=3), 3),
    "dropped connection": (lambda api, m: api.drop_next(m, times=2), 2),
    "timeout": (lambda api, m: api.stall_next(m, seconds=3 * TIMEOUT, times=2), 2),
}


@pytest.mark.parametrize("fault", SEND_FAULTS)
def test_failed_send_is_retried_and_answered_once(
    api: FakeBotApi, start_bot: Callable[..., Settings], fault: str
) -> None:
    start_bot(telegram_timeout=TIMEOUT)
    inject, faults = SEND_FAULTS[fault]
    inject(api, "sendMessage")
    asked = ask_in_groups(api, [EXAMPLE])
    [answer] = assert_answered_once(api, asked)
    assert ANSWER in shown(answer)
    assert api.faults_injected["sendMessage"] == faults
    assert len(api.calls("sendMessage")) == faults + 1  # each fault retried once, no more


def test_failed_button_answer_and_page_are_retried(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(telegram_timeout=TIMEOUT)
    asked = ask_in_groups(api, [EXAMPLE])
    [first] = assert_answered_once(api, asked)
    data = first.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    bot_message = next(m for m in api.messages.values() if m.get("reply_markup"))
    api.fail_next("answerCallbackQuery", status=500, description="Internal Server Error")
    api.drop_next("sendMessage")
    api.push_callback(bot_message, data)
    [page] = assert_answered_once(api, [bot_message["message_id"]])
    assert "2. " in shown(page)
    assert len(api.delivered("answerCallbackQuery")) == 1
    assert len(api.calls("answerCallbackQuery")) == 2


def test_typing_action_is_not_retried_and_does_not_hold_the_answer(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(telegram_timeout=TIMEOUT)
    api.fail_next("sendChatAction", status=500, description="Internal Server Error")
    assert_answered_once(api, ask_in_groups(api, [EXAMPLE]))
    assert len(api.calls("sendChatAction")) == 1


GET_UPDATES_FAULTS: dict[str, Callable[[FakeBotApi], None]] = {
    "500": lambda api: api.fail_next("getUpdates", status=500, description="Internal Error"),
    "429": lambda api: api.fail_next(
        "getUpdates", status=429, description="Too Many Requests", retry_after=1
    ),
    "dropped connection": lambda api: api.drop_next("getUpdates"),
    "timeout": lambda api: api.stall_next("getUpdates", seconds=1 + 4 * TIMEOUT),
}


@pytest.mark.parametrize("fault", GET_UPDATES_FAULTS)
def test_failed_get_updates_loses_no_update(
    api: FakeBotApi,
    start_bot: Callable[..., Settings],
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start_bot(telegram_timeout=TIMEOUT, poll_timeout=1)
    assert_answered_once(api, ask_in_groups(api, [EXAMPLE]))  # polling runs
    GET_UPDATES_FAULTS[fault](api)  # the next getUpdates fails
    time.sleep(0.1)  # let the pending long poll come back first
    asked = ask_in_groups(api, QUESTIONS, chats=2)
    assert_answered_once(api, asked)
    api.wait_confirmed(api.last_update_id)
    assert api.faults_injected["getUpdates"] == 1
    if fault in ("500", "dropped connection"):
        assert "Polling Telegram failed" in caplog.text
    assert "Traceback" not in caplog.text


def test_random_faults_on_every_method_lose_and_repeat_nothing(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(telegram_timeout=TIMEOUT, poll_timeout=1)
    for method in ("sendMessage", "sendChatAction", "answerCallbackQuery"):
        api.fail_randomly(method, rate=0.3, seed=7)
    api.fail_next("getUpdates", status=502, description="Bad Gateway")
    asked = ask_in_groups(api, QUESTIONS * 4, chats=4)
    answers = assert_answered_once(api, asked, timeout=30)
    assert sum(ANSWER in shown(call) for call in answers) >= 4
    assert api.faults_injected["sendMessage"] > 0


# SIGTERM during a burst (the console script in a subprocess) -----------------------------------


def test_sigterm_during_a_burst_sends_replies_under_way_and_exits_quickly(
    api: FakeBotApi, seed_settings: Settings, tmp_path: Path
) -> None:
    process = bot_process(api, seed_settings, tmp_path)
    try:
        wait_started(api, process)
        api.slow_down("sendMessage", 0.3)  # many replies are under way at the signal
        asked = ask_in_groups(api, QUESTIONS * 10, chats=10)
        api.wait_for("sendMessage", timeout=20)
    finally:
        signalled = time.monotonic()
        sent_before = len(api.delivered("sendMessage"))
        _, err = stop(process)
    took = time.monotonic() - signalled
    assert process.returncode == 0 and "Traceback" not in err, err
    assert took < 6, f"exit took {took:.1f} s"
    confirmed = api.confirmed_offset  # updates below it will not be fetched again
    answered = {replied_to(c) for c in api.delivered("sendMessage")}
    fetched = [m for m in asked if api.update_of_message[m] < confirmed]
    assert fetched, "the bot fetched nothing before the signal"
    assert all(m in answered for m in fetched)  # every fetched question was answered
    assert sent_before < len(fetched)  # ... though most replies were still under way
    left = [m for m in asked if m not in fetched]
    assert not any(m in answered for m in left)

    api.slow_down("sendMessage", 0)
    restarted = bot_process(api, seed_settings, tmp_path)  # a restart answers the rest, once
    try:
        wait_started(api, restarted)
        assert_answered_once(api, asked, timeout=30)
    finally:
        _, err = stop(restarted)
    assert restarted.returncode == 0, err
