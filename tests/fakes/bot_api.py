"""A fake Telegram Bot API server for tests: aiohttp on 127.0.0.1, an ephemeral port, own thread.

Routes `/bot<token>/<method>` for the methods the bot uses (getMe, getUpdates with offset and
long polling, sendMessage, editMessageText, sendChatAction, answerCallbackQuery,
answerInlineQuery, setMyCommands, deleteWebhook, ...) and answers HTTP 400
`{"ok": false, ...}` for anything else. It records
every request, checks HTML the way Telegram does (known tags, nesting, entities, 4096 UTF-16
units after parsing), and lets a test push updates and inject faults: an error answer (429 with
retry_after, 500, ...), a dropped connection, a request left unanswered past the client's
timeout, a fault at random on a share of calls, or every call slowed down. A faulty call is
never carried out, so `delivered()` lists exactly what a user would see:

    with FakeBotApi() as api:
        settings = Settings(telegram_token=api.token, telegram_base_url=api.base_url, ...)
        ...  # start the bot
        api.push_message("溧阳暑托班有多少家")
        call = api.wait_for("sendMessage")
        api.push_inline("溧阳暑托班")  # `@bot 溧阳暑托班` typed in some chat
        api.wait_for("answerInlineQuery")
        api.drop_next("sendMessage")  # the next send: connection closed, no answer
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal

from aiohttp import web

TOKEN = "123456789:AAH-fake_token-SHOULD-NEVER-BE-LOGGED"
MAX_TEXT = 4096
BOT_USER: dict[str, Any] = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Archive",
    "username": "archive_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": True,  # inline mode switched on with BotFather's /setinline
}
USER: dict[str, Any] = {"id": 1001, "is_bot": False, "first_name": "Ann", "language_code": "zh"}
OTHER_USER: dict[str, Any] = {"id": 1002, "is_bot": False, "first_name": "Bo"}
PRIVATE_CHAT: dict[str, Any] = {"id": 1001, "type": "private", "first_name": "Ann"}
GROUP_CHAT: dict[str, Any] = {"id": -1001234, "type": "supergroup", "title": "Readers"}
# Parameters PTB sends as raw strings; every other parameter arrives JSON-encoded.
RAW_STRING_PARAMS = {"text", "parse_mode", "callback_query_id", "action", "url", "secret_token"}
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
    "tg-spoiler", "span", "blockquote", "tg-emoji",
}  # fmt: skip
ALLOWED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


@dataclass(frozen=True, slots=True)
class Call:
    """One request the server received: the method name, its decoded parameters, and when.

    `at` is `time.monotonic()` when the request arrived (for `calls()`) or when it was carried
    out (for `delivered()`).
    """

    method: str
    params: dict[str, Any]
    at: float = field(default=0.0, compare=False)


class ApiError(Exception):
    """An error answer of the Bot API."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram sends with this error."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass(frozen=True, slots=True)
class Fault:
    """What goes wrong with one call: an error answer, a dropped connection, or no answer.

    "error": answer `error` (a 429 with retry_after, a 500, ...).
    "drop": close the connection without an answer (the client sees a dropped connection).
    "stall": answer nothing for `seconds` (set it above the client's timeout), then drop.
    None of them carries the call out.
    """

    kind: Literal["error", "drop", "stall"]
    error: ApiError | None = None
    seconds: float = 0.0


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


class _TelegramHTML(HTMLParser):
    """Parses Telegram HTML strictly: the visible text, or ApiError like Telegram's."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.text: list[str] = []
        self.open: list[str] = []
        self.seen: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise _parse_error(f'Unsupported start tag "{tag}"')
        self.open.append(tag)
        self.seen.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _parse_error(f'Unsupported start tag "{tag}/"')

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise _parse_error(f'Unmatched end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data:
            raise _parse_error("Unsupported start tag")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in ALLOWED_ENTITIES:
            raise _parse_error(f'Unsupported HTML entity "&{name};"')
        self.text.append(ALLOWED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in "xX" else int(name)
        self.text.append(chr(code))

    def handle_comment(self, data: str) -> None:
        raise _parse_error("Unsupported comment")

    def handle_decl(self, decl: str) -> None:
        raise _parse_error("Unsupported declaration")


def _parse_error(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {reason}")


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text a user would see, or ApiError when Telegram would refuse the markup."""
    if (parse_mode or "").upper() != "HTML":
        return text
    return "".join(_parsed(text).text)


def _parsed(text: str) -> _TelegramHTML:
    parser = _TelegramHTML()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise _parse_error(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return parser


def tags_used(text: str) -> set[str]:
    """The tag names in Telegram HTML (after checking it parses as Telegram would)."""
    return set(_parsed(text).seen)


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command and mention entities Telegram would attach to a message text."""
    entities = []
    command = re.match(r"/\w+(?:@\w+)?", text)
    if command:
        entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(command[0])})
    for mention in re.finditer(r"@\w{5,32}", text):
        if command and mention.start() < command.end():
            continue
        offset = utf16_len(text[: mention.start()])
        entities.append({"type": "mention", "offset": offset, "length": utf16_len(mention[0])})
    return entities


class FakeBotApi:
    """The fake server; use as a context manager or call `start()` and `stop()`."""

    def __init__(self, token: str = TOKEN, *, max_poll_seconds: float = 2.0) -> None:
        self.token = token
        self.max_poll_seconds = max_poll_seconds
        self.port = 0
        self.confirmed_offset = 0  # every update below this id was confirmed by getUpdates
        self.last_update_id = 0
        self.messages: dict[int, dict[str, Any]] = {}  # message_id → message, both directions
        self._calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._faults: dict[str, list[Fault]] = {}
        self._random_faults: dict[str, tuple[float, random.Random, tuple[Fault, ...]]] = {}
        self._delays: dict[str, float] = {}
        self._delivered: list[Call] = []
        self.faults_injected: dict[str, int] = {}  # method → faults answered so far
        self.pushed_at: dict[int, float] = {}  # update_id → time.monotonic() of the push
        self.update_of_message: dict[int, int] = {}  # user message_id → its update_id
        self._reject_entities = 0
        self._ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._new_update: asyncio.Event | None = None
        self._closing = False
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeBotApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to give the bot as its base URL (the token is appended to it)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> None:
        """Serve on an ephemeral port in a background thread; returns once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as error:  # surfaced to the test through start()
                failure.append(error)
                ready.set()

        self._thread = threading.Thread(target=serve, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise TimeoutError("the fake Bot API server did not start within 10 s")
        if failure:
            raise failure[0]

    def stop(self) -> None:
        """Wake pending long polls, stop serving and join the thread."""
        if self._loop is None or self._stopped is None or self._thread is None:
            return
        self._closing = True
        self._wake()  # before the loop can close: stopping is scheduled after this
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)
        self._loop = None

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._new_update = asyncio.Event()
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        if server is None or not server.sockets:  # pragma: no cover - aiohttp always has one
            raise RuntimeError("the fake Bot API server has no socket")
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    # -- what tests push and inspect --------------------------------------------------------

    def make_message(
        self,
        text: str,
        *,
        chat: dict[str, Any] = PRIVATE_CHAT,
        user: dict[str, Any] = USER,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A user's message as Telegram would deliver it (with command and mention entities)."""
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": chat,
            "from": user,
            "text": text,
        }
        entities = command_entities(text)
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        with self._changed:
            self.messages[message["message_id"]] = message
        return message

    def push_message(
        self,
        text: str,
        *,
        chat: dict[str, Any] = PRIVATE_CHAT,
        user: dict[str, Any] = USER,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue a message update for getUpdates; returns the message."""
        message = self.make_message(text, chat=chat, user=user, reply_to=reply_to)
        self.push({"message": message})
        return message

    def push_callback(
        self, message: dict[str, Any], data: str, *, user: dict[str, Any] = USER
    ) -> str:
        """Queue a button press on one of the bot's messages; returns the callback query id."""
        query_id = f"cq{next(self._ids)}"
        query = {
            "id": query_id,
            "from": user,
            "chat_instance": f"ci{message['chat']['id']}",
            "message": message,
            "data": data,
        }
        self.push({"callback_query": query})
        return query_id

    def push_inline(self, query: str, *, user: dict[str, Any] = USER) -> str:
        """Queue an inline query (`@bot query` typed in any chat); returns its id."""
        query_id = f"iq{next(self._ids)}"
        self.push({"inline_query": {"id": query_id, "from": user, "query": query, "offset": ""}})
        return query_id

    def push(self, update: dict[str, Any]) -> int:
        """Queue a raw update (its update_id is assigned here); returns the update_id."""
        with self._changed:
            update = {"update_id": next(self._update_ids), **update}
            self._updates.append(update)
            update_id = int(update["update_id"])
            self.last_update_id = update_id
            self.pushed_at[update_id] = time.monotonic()
            message = update.get("message")
            if isinstance(message, dict):
                self.update_of_message[int(message["message_id"])] = update_id
        self._wake()
        return update_id

    def reject_entities_once(self) -> None:
        """Answer the next HTML send or edit with "can't parse entities", as Telegram may."""
        with self._changed:
            self._reject_entities += 1

    def fail_next(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls of a method with an error (e.g. 429 with retry_after)."""
        error = ApiError(status, description, retry_after)
        self._add_faults(method, Fault("error", error), times)

    def drop_next(self, method: str, *, times: int = 1) -> None:
        """Close the connection of the next `times` calls of a method without answering."""
        self._add_faults(method, Fault("drop"), times)

    def stall_next(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Leave the next `times` calls unanswered for `seconds`, then drop them."""
        self._add_faults(method, Fault("stall", seconds=seconds), times)

    def fail_randomly(
        self, method: str, *, rate: float, seed: int = 0, retry_after: int = 1
    ) -> None:
        """From now on, a share `rate` of a method's calls gets a 429, a 500 or a drop."""
        faults = (
            Fault("error", ApiError(429, "Too Many Requests: retry later", retry_after)),
            Fault("error", ApiError(500, "Internal Server Error")),
            Fault("error", ApiError(502, "Bad Gateway")),
            Fault("drop"),
        )
        with self._changed:
            self._random_faults[method.lower()] = (rate, random.Random(seed), faults)

    def slow_down(self, method: str, seconds: float) -> None:
        """Carry out every call of a method only after `seconds` (0 restores the pace)."""
        with self._changed:
            self._delays[method.lower()] = seconds

    def _add_faults(self, method: str, fault: Fault, times: int) -> None:
        with self._changed:
            self._faults.setdefault(method.lower(), []).extend([fault] * times)

    def _take_fault(self, method: str) -> Fault | None:
        """The fault for this call of a method, if any (called with the lock held)."""
        queued = self._faults.get(method.lower())
        if queued:
            return queued.pop(0)
        chance = self._random_faults.get(method.lower())
        if chance is not None:
            rate, dice, faults = chance
            if dice.random() < rate:
                return dice.choice(faults)
        return None

    def calls(self, method: str | None = None) -> list[Call]:
        """Requests received so far, optionally of one method only."""
        with self._changed:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> Call:
        """Block until `count` calls of `method` (matching `where`) arrived; return the last."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    c for c in self._calls if c.method == method and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self._calls]
                    raise TimeoutError(f"no {count}× {method} within {timeout} s; got {seen}")
                self._changed.wait(left)

    def wait_confirmed(self, update_id: int, *, timeout: float = 10.0) -> None:
        """Block until the bot confirmed an update (a getUpdates with a higher offset)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.confirmed_offset <= update_id:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"update {update_id} not confirmed within {timeout} s")
                self._changed.wait(left)

    def delivered(self, method: str | None = None) -> list[Call]:
        """Calls carried out (answered "ok") so far, with the time they were; faulty ones not."""
        with self._changed:
            return [c for c in self._delivered if method is None or c.method == method]

    def wait_delivered(
        self,
        method: str,
        where: Callable[[Call], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Call]:
        """Block until `count` calls of `method` (matching `where`) were carried out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [
                    c
                    for c in self._delivered
                    if c.method == method and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {count}× {method} within {timeout} s")
                self._changed.wait(left)

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """The texts of every sendMessage and editMessageText so far (to one chat)."""
        return [
            str(c.params.get("text", ""))
            for c in self.calls()
            if c.method in ("sendMessage", "editMessageText")
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def _wake(self) -> None:
        if self._loop is not None and self._new_update is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self._loop.call_soon_threadsafe(self._new_update.set)

    # -- the HTTP side ----------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            body = {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return web.json_response(body, status=401)
        method = request.match_info["method"]
        params = await _params(request)
        with self._changed:
            self._calls.append(Call(method, params, time.monotonic()))
            self._changed.notify_all()
            fault = self._take_fault(method)
            if fault is not None:
                self.faults_injected[method] = self.faults_injected.get(method, 0) + 1
            delay = self._delays.get(method.lower(), 0.0)
        if fault is not None and fault.kind != "error":
            if fault.kind == "stall":
                await asyncio.sleep(fault.seconds)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=599)  # never reaches the client: the connection is gone
        if delay:
            await asyncio.sleep(delay)
        try:
            if fault is not None and fault.error is not None:
                raise fault.error
            handler = self._methods().get(method.lower())
            if handler is None:
                raise ApiError(400, f"Bad Request: method {method} is not supported by the fake")
            result = await handler(params)
        except ApiError as error:
            return web.json_response(error.body(), status=error.status)
        with self._changed:
            self._delivered.append(Call(method, params, time.monotonic()))
            self._changed.notify_all()
        return web.json_response({"ok": True, "result": result})

    def _methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "sendchataction": self._true,
            "answercallbackquery": self._true,
            "answerinlinequery": self._answer_inline_query,
            "setmycommands": self._true,
            "getmycommands": self._empty_list,
            "deletewebhook": self._true,
            "setwebhook": self._true,
            "close": self._true,
            "logout": self._true,
        }

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _empty_list(self, params: dict[str, Any]) -> list[Any]:
        return []

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return BOT_USER

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), self.max_poll_seconds)
        if self._new_update is None:  # pragma: no cover - set before serving
            raise ApiError(500, "Internal Server Error: not started")
        with self._changed:
            if offset > self.confirmed_offset:
                self.confirmed_offset = offset
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self._changed.notify_all()
        deadline = time.monotonic() + timeout
        while True:
            self._new_update.clear()
            with self._changed:
                ready = [u for u in self._updates if u["update_id"] >= offset][:limit]
            left = deadline - time.monotonic()
            if ready or left <= 0 or self._closing:
                return ready
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), left)

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        text = self._checked_text(params)
        chat = self._chat(chat_id)
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": chat,
            "from": BOT_USER,
            "text": text,
        }
        reply = params.get("reply_parameters") or {}
        reply_to_id = reply.get("message_id") or params.get("reply_to_message_id")
        if reply_to_id in self.messages:
            message["reply_to_message"] = self.messages[reply_to_id]
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[message["message_id"]] = message
        return message

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        text = self._checked_text(params)
        message = self.messages.get(params.get("message_id"))  # type: ignore[arg-type]
        if message is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        message = {**message, "text": text, "edit_date": int(time.time())}
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.messages[message["message_id"]] = message
        return message

    async def _answer_inline_query(self, params: dict[str, Any]) -> bool:
        """Check each result's message as Telegram would (HTML, length); at most 50 results."""
        results = params.get("results") or []
        if len(results) > 50:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        for result in results:
            if len(str(result.get("id", "")).encode()) > 64:
                raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
            self._checked_text(result["input_message_content"], key="message_text")
        return True

    def _checked_text(self, params: dict[str, Any], *, key: str = "text") -> str:
        """The visible text of a send or edit, or the ApiError Telegram would answer."""
        text = str(params.get(key) or "")
        parse_mode = params.get("parse_mode")
        if parse_mode and self._reject_entities:
            with self._changed:
                self._reject_entities -= 1
            raise _parse_error("Unsupported start tag (rejected on purpose by the test)")
        shown = visible_text(text, parse_mode).strip()
        if not shown:
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(shown) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return shown

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        for chat in self._known_chats():
            if chat["id"] == chat_id:
                return chat
        return {"id": chat_id, "type": "private" if int(chat_id) > 0 else "supergroup"}

    def _known_chats(self) -> Iterator[dict[str, Any]]:
        with self._changed:
            chats = [m["chat"] for m in self.messages.values()]
        yield from chats


async def _params(request: web.Request) -> dict[str, Any]:
    """Request parameters, JSON-decoded except the ones PTB sends as raw strings."""
    if request.content_type == "application/json":
        body = await request.json()
        return dict(body) if isinstance(body, dict) else {}
    raw = dict(request.query)
    if request.can_read_body:
        form = await request.post()
        raw.update({k: v for k, v in form.items() if isinstance(v, str)})
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in RAW_STRING_PARAMS:
            params[key] = value
            continue
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params
