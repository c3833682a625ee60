"""Reading on from an answer in Telegram, end to end through python-telegram-bot and the fake
Bot API: the 全文 button and its pages, buttons after a restart, deep links, stale ids after a
rebuild, inline mode, and the question's words marked in the snippets."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot import format as fmt
from bot.settings import Settings
from bot.telegram import ArticleButton, build_application
from retrieval.ids import id_of
from retrieval.search import Searcher
from retrieval.segments import build_index
from retrieval.store import open_index
from retrieval.tokenize import Tokenizer
from tests.fakes.bot_api import (
    BOT_USER,
    OTHER_USER,
    PRIVATE_CHAT,
    USER,
    Call,
    FakeBotApi,
    tags_used,
    utf16_len,
    visible_text,
)
from tests.fakes.harness import running

EXAMPLE = fmt.EXAMPLE_QUESTION
SOURCE = "000_f1c283b55319c401.txt"
TITLE = "溧阳工会爱心暑托班点亮多彩假期"
PRIVATE = PRIVATE_CHAT["id"]
LINK = re.compile(
    rf'<a href="https://t\.me/{BOT_USER["username"]}\?start=([\w-]{{24}})">'
)  # id + check
# A long article: three or more messages, with text that must be escaped.
SENTENCE = "第{}段:运河<b>&治理</b>工程推进顺利,沿岸村镇的防洪能力明显提升,水质持续改善。"
LONG_PAGE = "运河治理\n\n" + "\n".join(SENTENCE.format(n) for n in range(260)) + "\n"


def shown(call: Call) -> str:
    return visible_text(call.params["text"], call.params.get("parse_mode"))


def buttons(call: Call) -> dict[str, str]:
    """Button text → callback data of a sent or edited message."""
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


def bot_message(api: FakeBotApi, call: Call) -> dict[str, Any]:
    """The message the fake made of a sendMessage call (to press its buttons)."""
    return next(
        m
        for m in reversed(list(api.messages.values()))
        if m.get("from") == BOT_USER and m.get("text") == shown(call).strip()
    )


def long_searcher(tmp_path: Path, text: str = LONG_PAGE) -> Searcher:
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    (archive / "2023-04-05.txt").write_text(text, "utf-8")
    (archive / "other.txt").write_text("天气预报\n\n明天多云转晴,气温回升。\n", "utf-8")
    tokenizer = Tokenizer()
    build_index(archive, tmp_path / "index", tokenizer)
    return Searcher(open_index(tmp_path / "index"), tokenizer)


def within_limits(call: Call) -> None:
    assert utf16_len(shown(call)) <= fmt.TELEGRAM_MAX_CHARS
    assert tags_used(call.params["text"]) <= {"b", "i", "code", "a"}


def test_full_text_button_pages_the_article_back_and_forth(
    api: FakeBotApi, start_bot: Callable, tmp_path: Path
) -> None:
    start_bot(searcher=long_searcher(tmp_path))
    api.push_message("运河治理工程")
    answer = api.wait_for("sendMessage")
    assert "2023-04-05" in shown(answer)  # the page's date, beside its source
    full = buttons(answer)[fmt.FULL_TEXT_BUTTON]
    api.push_callback(bot_message(api, answer), full)
    first = api.wait_for("sendMessage", count=2)
    within_limits(first)
    assert shown(first).startswith("《运河治理》") and "2023-04-05" in shown(first)
    pages = int(re.search(r"1/(\d+)", shown(first))[1])  # type: ignore[index]
    assert pages >= 3 and set(buttons(first)) == {fmt.NEXT_BUTTON}
    article = api.messages[max(api.messages)]
    bodies = [shown(first).split("\n\n", 1)[1]]
    for page in range(2, pages + 1):
        api.push_callback(
            article,
            buttons(api.calls("editMessageText")[-1] if page > 2 else first)[fmt.NEXT_BUTTON],
        )
        edit = api.wait_for("editMessageText", count=page - 1)
        within_limits(edit)
        assert (
            f"{page}/{pages}" in shown(edit) and edit.params["message_id"] == article["message_id"]
        )
        bodies.append(shown(edit).split("\n\n", 1)[1])
    assert set(buttons(edit)) == {fmt.PREVIOUS_BUTTON}
    expected = LONG_PAGE.split("\n\n", 1)[1]
    assert "".join(bodies).replace("\n", "") == expected.replace("\n", "")  # nothing lost
    api.push_callback(article, buttons(edit)[fmt.PREVIOUS_BUTTON])
    back = api.wait_for("editMessageText", count=pages)
    assert f"{pages - 1}/{pages}" in shown(back)
    assert set(buttons(back)) == {fmt.PREVIOUS_BUTTON, fmt.NEXT_BUTTON}
    assert all(len(data.encode()) <= 64 for data in buttons(back).values())


def test_buttons_work_after_a_restart(
    api: FakeBotApi, seed_settings: Settings, seed_searcher: Searcher
) -> None:
    settings = seed_settings.model_copy(
        update={"telegram_token": SecretStr(api.token), "telegram_base_url": api.base_url}
    )
    with running(build_application(settings, seed_searcher)):
        api.push_message(EXAMPLE)
        answer = api.wait_for("sendMessage")
    with running(build_application(settings, seed_searcher)):  # nothing kept in memory
        api.push_callback(bot_message(api, answer), buttons(answer)[fmt.FULL_TEXT_BUTTON])
        article = api.wait_for("sendMessage", count=2)
    assert shown(article).startswith(f"《{TITLE}》") and SOURCE in shown(article)
    assert "爱心暑托班陆续开班" in shown(article)


def test_deep_link_from_a_source_opens_the_article(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    api.push_message(EXAMPLE)
    answer = api.wait_for("sendMessage")
    ids = LINK.findall(answer.params["text"])
    assert len(ids) == 3  # every source links back
    assert "<b>暑托班</b>" in answer.params["text"]  # the question's words are marked
    api.push_message(f"/start {ids[0]}", user=OTHER_USER, chat={"id": 1002, "type": "private"})
    article = api.wait_for("sendMessage", count=2)
    assert article.params["chat_id"] == 1002
    assert shown(article).startswith(f"《{TITLE}》") and SOURCE in shown(article)
    api.push_message("/start")  # without a payload: the introduction, as before
    assert "报纸档案问答" in shown(api.wait_for("sendMessage", count=3))


def test_ids_gone_after_a_rebuild_say_so(
    api: FakeBotApi, start_bot: Callable, tmp_path: Path
) -> None:
    table = long_searcher(tmp_path).index.passages
    old = table[max(i for i in range(len(table)) if "运河" in table[i].text)].passage_id
    # The page is shortened: the passage the id named (its article's last) is no more.
    rebuilt = long_searcher(tmp_path, "水利新闻\n\n水库蓄水量比去年同期增加一成。\n")
    start_bot(searcher=rebuilt)
    gone = ArticleButton(id_of(old)).data
    message = api.make_message("运河治理")
    api.push_callback(message, gone)
    alert = api.wait_for("answerCallbackQuery")
    assert alert.params["text"] == fmt.ARTICLE_GONE and alert.params["show_alert"] is True
    api.push_message(f"/start {id_of(old)}")
    assert shown(api.wait_for("sendMessage")) == fmt.ARTICLE_GONE


def test_a_link_to_a_passage_whose_file_changed_says_so(
    api: FakeBotApi, start_bot: Callable, tmp_path: Path
) -> None:
    first = long_searcher(tmp_path).search("运河治理", top_k=1)[0].passage
    changed = LONG_PAGE.replace("第0段", "第〇段")  # the same places, another text
    rebuilt = long_searcher(tmp_path, changed)
    assert rebuilt.article(id_of(first.passage_id)).text != first.text  # the id alone opens it
    start_bot(searcher=rebuilt)
    api.push_message(f"/start {ArticleButton.of(first).payload}")
    assert shown(api.wait_for("sendMessage")) == fmt.ARTICLE_GONE
    api.push_callback(api.make_message("运河"), ArticleButton.of(first).data)
    assert api.wait_for("answerCallbackQuery").params["text"] == fmt.ARTICLE_GONE


def test_inline_query_offers_five_results_to_send(api: FakeBotApi, start_bot: Callable) -> None:
    start_bot()
    api.push_inline(EXAMPLE)
    call = api.wait_for("answerInlineQuery")
    assert call.params["is_personal"] is True and call.params["cache_time"] == 10
    results = call.params["results"]
    assert 1 <= len(results) <= 5 and len({r["id"] for r in results}) == len(results)
    best = results[0]
    assert best["type"] == "article" and "40多家" in best["title"]
    assert SOURCE in best["description"]
    content = best["input_message_content"]
    text = visible_text(content["message_text"], content["parse_mode"])
    assert "40多家" in text and SOURCE in text and TITLE in text
    assert LINK.search(content["message_text"])


@pytest.mark.parametrize("question", ["", "   "])
def test_empty_inline_query_gets_no_results(
    api: FakeBotApi, start_bot: Callable, question: str
) -> None:
    start_bot()
    api.push_inline(question)
    assert api.wait_for("answerInlineQuery").params["results"] == []


def test_inline_query_of_a_user_not_allowed_gets_nothing(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot(allowed_chat_ids=[USER["id"]])
    api.push_inline(EXAMPLE, user=OTHER_USER)
    refused = api.wait_for("answerInlineQuery")
    assert refused.params["results"] == [] and refused.params["is_personal"] is True
    api.push_inline(EXAMPLE, user=USER)
    assert api.wait_for("answerInlineQuery", count=2).params["results"]


def test_full_text_presses_count_against_the_chat_rate_limit(
    api: FakeBotApi, start_bot: Callable
) -> None:
    start_bot(chat_rate_limit=1)
    api.push_message(EXAMPLE)
    answer = api.wait_for("sendMessage")
    api.push_callback(bot_message(api, answer), buttons(answer)[fmt.FULL_TEXT_BUTTON])
    assert api.wait_for("answerCallbackQuery").params["text"] == fmt.SLOW_DOWN
    assert len(api.calls("sendMessage")) == 1
