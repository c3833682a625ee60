"""Security of the Telegram bot: the token never leaks (logs, messages to users, files written,
errors at start-up), the allowlist holds for every kind of update, one chat cannot starve the
others, and questions and names stay out of the logs unless a setting says otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot import format as fmt
from bot.settings import Settings
from tests.fakes.bot_api import (
    BOT_USER,
    GROUP_CHAT,
    PRIVATE_CHAT,
    FakeBotApi,
    visible_text,
)
from tests.fakes.harness import bot_process, stop, wait_started

pytestmark = pytest.mark.filterwarnings("ignore:Deprecated since version v22.2")

EXAMPLE = fmt.EXAMPLE_QUESTION
ANSWER = "40多家"
PRIVATE = PRIVATE_CHAT["id"]
STRANGER: dict[str, Any] = {"id": 2002, "is_bot": False, "first_name": "Stranger"}
STRANGER_CHAT: dict[str, Any] = {"id": 2002, "type": "private", "first_name": "Stranger"}


def secrets_of(token: str) -> list[bytes]:
    """The token and its secret half, as bytes to look for."""
    return [token.encode(), token.split(":", 1)[1].encode()]


def leaks(data: str | bytes, token: str) -> bool:
    """Whether text or bytes hold the token or its secret half."""
    raw = data.encode() if isinstance(data, str) else data
    return any(secret in raw for secret in secrets_of(token))


def everything_sent(api: FakeBotApi) -> list[str]:
    """Every text the bot tried to show to a user: messages and button answers."""
    texts = [str(c.params.get("text", "")) for c in api.calls("sendMessage")]
    texts += [str(c.params.get("text", "")) for c in api.calls("answerCallbackQuery")]
    return texts


# The token ------------------------------------------------------------------------------------


def test_token_never_appears_in_logs_messages_or_files(
    api: FakeBotApi, seed_settings: Settings, tmp_path: Path
) -> None:
    token = api.token
    settings = seed_settings.model_copy(update={"index_dir": tmp_path / "index"})  # built anew
    process = bot_process(api, settings, tmp_path, verbose=True, ARCHIVE_BOT_LOG_QUESTIONS="true")
    try:
        wait_started(api, process)
        # Errors whose descriptions carry the token, on the way to the logs and to users.
        api.fail_next("sendMessage", status=400, description=f"Bad Request: chat {token} gone")
        api.fail_next("getUpdates", status=500, description=f"Internal error at /bot{token}/")
        api.drop_next("sendMessage")
        api.push_message(EXAMPLE)
        api.push_message(f"/ask {EXAMPLE} {token}", chat=GROUP_CHAT)  # a user pastes it
        api.push_message("/start")
        sent = api.wait_delivered("sendMessage", count=3, timeout=30)
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert any(visible_text(c.params["text"], "HTML") == fmt.FAILURE for c in sent)
    assert "Unexpected error" in err and "Polling Telegram failed" in err  # the errors were met
    assert not leaks(out, token) and not leaks(err, token)
    for text in everything_sent(api):
        if "/ask" not in text:  # the pasted token comes back only in its own echo, if at all
            assert not leaks(text, token)
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".npy" for path in written)  # the index was written here
    assert not [path for path in written if leaks(path.read_bytes(), token)]


def test_rejected_token_is_a_clear_error_without_the_token(
    api: FakeBotApi, seed_settings: Settings, tmp_path: Path
) -> None:
    wrong = "987654321:AAH-wrong_token-MUST-NOT-SHOW"
    process = bot_process(api, seed_settings, tmp_path, ARCHIVE_BOT_TELEGRAM_TOKEN=wrong)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    assert "rejected the bot token" in err and "ARCHIVE_BOT_TELEGRAM_TOKEN" in err
    assert not leaks(out + err, wrong)
    assert err.rstrip().splitlines()[-1].startswith("archive-bot: Telegram rejected the bot token")


# The allowlist --------------------------------------------------------------------------------


def test_allowlist_holds_for_messages_commands_and_buttons(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(allowed_chat_ids=[PRIVATE], chat_rate_limit=0)
    api.push_message(EXAMPLE)  # allowed: answered, with a "更多" button
    allowed = api.wait_delivered("sendMessage")[0]
    data = allowed.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    answered = next(m for m in api.messages.values() if m.get("reply_markup"))

    photo = {"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}
    strangers = [
        api.make_message(EXAMPLE, chat=STRANGER_CHAT, user=STRANGER),
        api.make_message("/start", chat=STRANGER_CHAT, user=STRANGER),
        api.make_message("/help", chat=STRANGER_CHAT, user=STRANGER),
        api.make_message(f"/ask {EXAMPLE}", chat=STRANGER_CHAT, user=STRANGER),
        api.make_message("/whatever", chat=STRANGER_CHAT, user=STRANGER),
        {**api.make_message("", chat=STRANGER_CHAT, user=STRANGER), "photo": [photo]},
        api.make_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT, user=STRANGER),
        api.make_message(f"@{BOT_USER['username']} {EXAMPLE}", chat=GROUP_CHAT, user=STRANGER),
        api.make_message(
            EXAMPLE,
            chat=GROUP_CHAT,
            user=STRANGER,
            reply_to={**api.make_message("旧的回答", chat=GROUP_CHAT), "from": BOT_USER},
        ),
    ]
    for message in strangers:
        api.push({"message": message})
    api.push_message("大家好", chat=GROUP_CHAT, user=STRANGER)  # group chatter: not even refused
    # A valid "更多" button, pressed in chats that are not allowed.
    api.push_callback({**answered, "chat": GROUP_CHAT}, data, user=STRANGER)
    api.push_callback({**answered, "chat": STRANGER_CHAT}, data, user=STRANGER)

    refusals = api.wait_delivered(
        "sendMessage", lambda c: c.params["chat_id"] != PRIVATE, count=len(strangers)
    )
    buttons = api.wait_delivered("answerCallbackQuery", count=2)
    time.sleep(0.3)  # anything else would arrive now
    assert all(visible_text(c.params["text"], "HTML") == fmt.REFUSAL for c in refusals)
    assert [c.params["text"] for c in buttons] == [fmt.REFUSAL, fmt.REFUSAL]
    outside = [c for c in api.calls("sendMessage") if c.params["chat_id"] != PRIVATE]
    assert len(outside) == len(strangers)  # one refusal each, nothing more
    assert not [c for c in api.calls("sendChatAction") if c.params["chat_id"] != PRIVATE]
    assert len(api.calls("sendMessage")) == len(strangers) + 1


# Per-chat rate limit --------------------------------------------------------------------------


def test_one_chat_flooding_cannot_starve_another(
    api: FakeBotApi, start_bot: Callable[..., Settings]
) -> None:
    start_bot(chat_rate_limit=3)
    for _ in range(40):
        api.push_message(EXAMPLE)  # one chat floods
    other = api.push_message(f"/ask {EXAMPLE}", chat=GROUP_CHAT)
    to_group = api.wait_delivered("sendMessage", lambda c: c.params["chat_id"] == GROUP_CHAT["id"])
    assert ANSWER in visible_text(to_group[0].params["text"], "HTML")
    assert to_group[0].params["reply_parameters"]["message_id"] == other["message_id"]
    flood = api.wait_delivered("sendMessage", lambda c: c.params["chat_id"] == PRIVATE, count=4)
    time.sleep(0.3)
    texts = [visible_text(c.params["text"], "HTML") for c in flood]
    assert sum(ANSWER in text for text in texts) == 3 and texts.count(fmt.SLOW_DOWN) == 1
    assert len(api.calls("sendMessage")) == 5  # 3 answers + 1 "slow down" + the other chat
    # Buttons count too: a "更多" press over the limit is told to wait.
    button = next(c for c in flood if c.params.get("reply_markup"))
    data = button.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    message = next(m for m in api.messages.values() if m.get("reply_markup"))
    api.push_callback(message, data)
    assert api.wait_delivered("answerCallbackQuery")[0].params["text"] == fmt.SLOW_DOWN


def test_rate_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_BOT_CHAT_RATE_LIMIT", "7")
    assert Settings().chat_rate_limit == 7
    monkeypatch.setenv("ARCHIVE_BOT_CHAT_RATE_LIMIT", "-1")
    with pytest.raises(ValueError, match="chat_rate_limit"):
        Settings()


# Privacy --------------------------------------------------------------------------------------

NAMED: dict[str, Any] = {"id": 3003, "is_bot": False, "first_name": "Xiaoming", "last_name": "Li"}
NAMED_CHAT: dict[str, Any] = {"id": 3003, "type": "private", "first_name": "Xiaoming"}
SECRET_QUESTION = "溧阳暑托班的秘密问题有多少家"


def test_questions_and_names_are_not_logged_at_info(
    api: FakeBotApi, start_bot: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    start_bot(allowed_chat_ids=[NAMED_CHAT["id"], GROUP_CHAT["id"]], chat_rate_limit=2)
    api.fail_next("sendMessage", status=400, description="Bad Request: chat not found")
    for _ in range(4):  # an error, an answer, "slow down", ignored
        api.push_message(SECRET_QUESTION, chat=NAMED_CHAT, user=NAMED)
    api.push_message(SECRET_QUESTION, chat=STRANGER_CHAT, user=STRANGER)  # refused
    api.push_message(f"/ask {SECRET_QUESTION}", chat=GROUP_CHAT, user=NAMED)
    api.wait_delivered("sendMessage", count=5, timeout=20)
    time.sleep(0.2)
    assert "Unexpected error" in caplog.text  # the error was logged, without the question
    for private in (SECRET_QUESTION, "秘密", "Xiaoming", "Li Xiaoming", "Stranger"):
        assert private not in caplog.text


def test_console_script_logs_no_questions_by_default(
    api: FakeBotApi, seed_settings: Settings, tmp_path: Path
) -> None:
    process = bot_process(api, seed_settings, tmp_path)
    try:
        wait_started(api, process)
        api.push_message(SECRET_QUESTION, chat=NAMED_CHAT, user=NAMED)
        api.wait_delivered("sendMessage", timeout=20)
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert "INFO" in err  # it does log, at INFO
    assert "秘密" not in out + err and "Xiaoming" not in out + err
