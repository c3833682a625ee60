"""Front end "answer → Telegram": the python-telegram-bot application and its handlers.

Each handler is thin: parse the update, search off the event loop, format with `bot.format`,
reply. Private chats: any text is a question. Groups (privacy mode on): `/ask question`,
`@bot question` and replies to the bot's messages are questions; other chatter is ignored.
Replies in groups are compact, with a "更多" button for the next passages.

Questions are prepared like everywhere else (`bot.questions`): an empty one gets the usage,
one with nothing to search is told so without searching, an overlong one is searched by its
beginning. Every question counts against its chat's rate limit, so one chat cannot starve the
others; the allowlist is checked first, for messages, commands and button presses alike.

Faults of the Bot API: a 429 waits `retry_after` and retries (`AIORateLimiter`); a 5xx, a
dropped connection or a timeout is retried after a short pause, a few times
(`RetryingRateLimiter`); getUpdates is retried by PTB's polling loop, and an update is
confirmed only by the next getUpdates, so none is lost. On SIGTERM the updates already fetched
are answered and confirmed before the process exits.

The bot token is a secret: it is never logged, and the loggers whose lines contain it (httpx
request lines, PTB's bot set-up lines) are kept at WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import format as fmt
from bot.engine import ask as ask_searcher
from bot.engine import open_searcher
from bot.errors import BotError, ConfigError
from bot.questions import Outcome, Problem, Question, clean, prepare
from bot.settings import Settings
from retrieval.models import Result
from retrieval.search import Searcher

log = logging.getLogger(__name__)

# Loggers whose lines contain the bot token (httpx: request URLs; PTB: "Set Bot API URL").
TOKEN_LOGGERS = ("httpx", "httpcore", "telegram.Bot", "telegram.ext.ExtBot")
ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY)
MAX_RETRIES = 3  # for HTTP 429 (RetryAfter); a refused send was not carried out
NETWORK_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # pauses before retrying a 5xx, drop or timeout
NOT_RETRIED = frozenset({"sendChatAction"})  # a late "typing…" is worse than none
BOOTSTRAP_RETRIES = 3  # getMe / setWebhook at start-up: ride out a blip, then give up clearly
STATE_KEY = "archive_bot"
MORE_DATA = re.compile(r"^more:(?P<key>[\w-]{1,16}):(?P<offset>\d{1,4})$")
QUESTIONS_KEPT = 2048  # "更多" buttons stay usable for this many recent questions
CHATS_TRACKED = 10_000  # beyond this many chats, the rate limit forgets idle ones
TYPING_SECONDS = 5.0  # Telegram shows "typing…" this long: one action per chat per period
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
COMMANDS = (
    BotCommand("start", "介绍：我知道什么、怎么问"),
    BotCommand("help", "怎么提问"),
    BotCommand("ask", "提问，例如 /ask " + fmt.EXAMPLE_QUESTION),
)

Context = ContextTypes.DEFAULT_TYPE


class Admission(Enum):
    """What the per-chat rate limit says about one more question."""

    ANSWER = "answer"
    WARN = "warn"  # first question over the limit: say "slow down" once
    IGNORE = "ignore"  # still over the limit, already warned


class ChatRateLimit:
    """A sliding window of question times per chat; 0 questions per window means no limit."""

    def __init__(
        self,
        per_window: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_window = per_window
        self.window = window
        self.clock = clock
        self._times: dict[int, deque[float]] = {}
        self._warned: set[int] = set()

    def check(self, chat_id: int) -> Admission:
        """Count a question from the chat if it is within the limit."""
        if self.per_window <= 0:
            return Admission.ANSWER
        now = self.clock()
        if len(self._times) > CHATS_TRACKED:
            self._forget_idle(now)
        times = self._times.setdefault(chat_id, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.per_window:
            times.append(now)
            self._warned.discard(chat_id)
            return Admission.ANSWER
        if chat_id in self._warned:
            return Admission.IGNORE
        self._warned.add(chat_id)
        return Admission.WARN

    def _forget_idle(self, now: float) -> None:
        """Drop chats that asked nothing within the window, so memory stays bounded."""
        idle = [
            chat
            for chat, times in self._times.items()
            if not times or times[-1] <= now - self.window
        ]
        for chat in idle:
            del self._times[chat]
            self._warned.discard(chat)


class TypingThrottle:
    """At most one "typing…" action per chat every `every` seconds.

    Telegram shows the action for five seconds, and every request counts against the bot's
    flood limits (about 30 a second): a burst of questions should spend them on answers.
    """

    def __init__(
        self, every: float = TYPING_SECONDS, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every = every
        self.clock = clock
        self._last: dict[int, float] = {}

    def due(self, chat_id: int) -> bool:
        """Whether to send the action to this chat now (and note that it was sent)."""
        now = self.clock()
        last = self._last.get(chat_id)
        if last is not None and now - last < self.every:
            return False
        if len(self._last) > CHATS_TRACKED:
            self._last = {c: t for c, t in self._last.items() if now - t < self.every}
        self._last[chat_id] = now
        return True


class QuestionStore:
    """Recent questions under short keys, for "更多" buttons (callback data is ≤ 64 bytes)."""

    def __init__(self, size: int = QUESTIONS_KEPT) -> None:
        self.size = size
        self._questions: OrderedDict[str, str] = OrderedDict()

    def put(self, question: str) -> str:
        """Keep a question and return its key, forgetting the oldest beyond `size`."""
        key = secrets.token_urlsafe(6)
        self._questions[key] = question
        while len(self._questions) > self.size:
            self._questions.popitem(last=False)
        return key

    def get(self, key: str) -> str | None:
        """The question kept under a key, or None when it was forgotten (or never kept)."""
        return self._questions.get(key)


class RetryingRateLimiter(AIORateLimiter):
    """`AIORateLimiter` (Telegram's flood limits; waits and retries after a 429) that also
    retries a request that failed on the way: an HTTP 5xx, a dropped connection, a timeout.

    Such a request was not carried out, so retrying it cannot duplicate it, with one exception:
    after a read timeout Telegram may have carried it out and only its answer was lost. We retry
    then too, so a reply may, rarely, be shown twice; not retrying would lose it instead, and a
    lost answer leaves someone waiting with no sign of it. getUpdates never comes through here
    (PTB's polling loop retries it).
    """

    def __init__(
        self,
        *,
        max_retries: int = MAX_RETRIES,
        delays: Sequence[float] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        super().__init__(max_retries=max_retries)
        self.delays = tuple(NETWORK_RETRY_DELAYS if delays is None else delays)
        self.redact = redact

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Send the request through the rate limiter, retrying network failures a few times."""
        delays = () if endpoint in NOT_RETRIED else self.delays
        attempt = 0
        while True:
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except NetworkError as error:
                if isinstance(error, BadRequest) or attempt >= len(delays):
                    raise
                delay, attempt = delays[attempt], attempt + 1
                log.warning(
                    "Bot API %s failed (%s: %s); retry %d of %d in %.1f s.",
                    endpoint,
                    type(error).__name__,
                    self.redact(error.message),
                    attempt,
                    len(delays),
                    delay,
                )
                await asyncio.sleep(delay)


@dataclass
class BotState:
    """What the handlers share, kept in `application.bot_data`."""

    settings: Settings
    searcher: Searcher
    limit: ChatRateLimit
    questions: QuestionStore = field(default_factory=QuestionStore)
    typing: TypingThrottle = field(default_factory=TypingThrottle)


def run(
    settings: Settings,
    *,
    webhook_url: str | None = None,
    listen: str = "0.0.0.0",
    port: int = 8443,
    drop_pending_updates: bool = False,
) -> None:
    """Answer questions on Telegram until SIGINT or SIGTERM: long polling, or a webhook."""
    token = bot_token(settings)
    secret = webhook_secret(settings) if webhook_url else None
    redact_logs(token, secret)
    application = build_application(settings, open_searcher(settings))
    try:
        if webhook_url is None:
            log.info("Polling Telegram for updates; stop with Ctrl-C or SIGTERM.")
            application.run_polling(
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=drop_pending_updates,
                bootstrap_retries=BOOTSTRAP_RETRIES,
            )
            return
        log.info("Serving the webhook on %s:%d.", listen, port)
        application.run_webhook(
            listen=listen,
            port=port,
            url_path=urlsplit(webhook_url).path.lstrip("/"),
            webhook_url=webhook_url,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            drop_pending_updates=drop_pending_updates,
            bootstrap_retries=BOOTSTRAP_RETRIES,
        )
    except InvalidToken:  # PTB's message holds the token: never show it
        raise ConfigError(
            "Telegram rejected the bot token. Check ARCHIVE_BOT_TELEGRAM_TOKEN against the token "
            "@BotFather gave you."
        ) from None
    except TelegramError as error:
        reason = error.message.replace(token, "<token>")
        raise BotError(
            f"Could not start the Telegram bot ({type(error).__name__}: {reason}). Check the "
            "network and ARCHIVE_BOT_TELEGRAM_BASE_URL, then start it again."
        ) from None


def webhook_secret(settings: Settings) -> str | None:
    """The webhook secret if it is one Telegram accepts (warns when there is none)."""
    if settings.webhook_secret is None:
        log.warning(
            "ARCHIVE_BOT_WEBHOOK_SECRET is not set: anyone who knows the webhook URL can send "
            "updates. Set it to a random string."
        )
        return None
    secret = settings.webhook_secret.get_secret_value()
    if not WEBHOOK_SECRET.match(secret):
        raise ConfigError(
            "ARCHIVE_BOT_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -."
        )
    return secret


def bot_token(settings: Settings) -> str:
    """The configured bot token, or a ConfigError saying how to set it."""
    token = settings.telegram_token.get_secret_value() if settings.telegram_token else ""
    if not token.strip():
        raise ConfigError(
            "No Telegram bot token. Set ARCHIVE_BOT_TELEGRAM_TOKEN to the token @BotFather gave "
            "you."
        )
    return token.strip()


def build_application(settings: Settings, searcher: Searcher) -> Application:
    """The application with its handlers, talking to `settings.telegram_base_url`."""
    quiet_token_loggers()
    token = bot_token(settings)
    timeout = settings.telegram_timeout
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.telegram_base_url)
        .concurrent_updates(True)
        .rate_limiter(RetryingRateLimiter(redact=lambda text: text.replace(token, "<token>")))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .write_timeout(timeout)
        .pool_timeout(timeout)
        .get_updates_connect_timeout(timeout)
        .get_updates_read_timeout(timeout)
        .get_updates_write_timeout(timeout)
        .get_updates_pool_timeout(timeout)
        .post_init(post_init)
        .build()
    )
    limit = ChatRateLimit(settings.chat_rate_limit)
    application.bot_data[STATE_KEY] = BotState(settings, searcher, limit)
    new = filters.UpdateType.MESSAGE
    private, groups = filters.ChatType.PRIVATE, filters.ChatType.GROUPS
    application.add_handlers(
        [
            CommandHandler(["start", "help"], start, filters=new),
            CommandHandler("ask", ask, filters=new),
            MessageHandler(new & private & filters.COMMAND, start),
            MessageHandler(new & private & filters.TEXT, private_text),
            MessageHandler(new & private & ~filters.StatusUpdate.ALL, not_text),
            MessageHandler(new & groups & filters.TEXT & ~filters.COMMAND, group_text),
            CallbackQueryHandler(more),
        ]
    )
    application.add_error_handler(on_error)
    return application


async def post_init(application: Application) -> None:
    """Register the command menu and say which archive the bot serves."""
    try:
        await application.bot.set_my_commands(list(COMMANDS))
    except TelegramError as error:  # the menu is a convenience: answer questions without it
        reason = error.message.replace(application.bot.token, "<token>")
        log.warning("Could not set the command menu (%s); going on without it.", reason)
    info = _state(application.bot_data).searcher.info
    log.info(
        "Bot @%s answers questions about %s (%d articles).",
        application.bot.username,
        info.archive,
        info.articles,
    )


async def start(update: Update, context: Context) -> None:
    """Explain what the archive holds and how to ask (/start, /help)."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    info = _state(context.bot_data).searcher.info
    await _send(context, message, fmt.help_reply(info, bot_username=context.bot.username))


async def ask(update: Update, context: Context) -> None:
    """Answer `/ask question` (`/ask@bot question` in groups); a bare /ask gets the usage."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    parts = (message.text or "").split(maxsplit=1)
    await _answer(update, context, parts[1] if len(parts) > 1 else "")


async def private_text(update: Update, context: Context) -> None:
    """Answer any text in a private chat as a question."""
    message = update.effective_message
    if message is None or not message.text or not await _admitted(update, context):
        return
    await _answer(update, context, message.text)


async def not_text(update: Update, context: Context) -> None:
    """Ask for a text question when a private chat sends a photo, sticker, voice note..."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    await _send(context, message, fmt.notice_reply(fmt.TEXT_ONLY))


async def group_text(update: Update, context: Context) -> None:
    """Answer group messages addressed to the bot (a mention or a reply); ignore the rest."""
    message = update.effective_message
    if message is None or not message.text:
        return
    question = addressed_question(message, bot_id=context.bot.id, username=context.bot.username)
    if question is None or not await _admitted(update, context):
        return
    await _answer(update, context, question)


async def more(update: Update, context: Context) -> None:
    """Show the next passages of the question behind a "更多" button; other buttons are stale."""
    query = update.callback_query
    chat = update.effective_chat
    if query is None or chat is None or not await _admitted(update, context):
        return
    state = _state(context.bot_data)
    match = MORE_DATA.match(query.data or "")
    question = state.questions.get(match["key"]) if match else None
    if match is None or question is None:
        await query.answer(fmt.STALE_BUTTON)
        return
    if state.limit.check(chat.id) is not Admission.ANSWER:
        await query.answer(fmt.SLOW_DOWN)
        return
    offset = int(match["offset"])
    outcome = await _search(state, prepare(question), offset=offset)
    if not outcome.result.hits:
        await query.answer(fmt.NO_MORE)
        return
    await query.answer()
    reply_to = query.message.message_id if query.message else None
    shown = state.settings.top_k
    page, markup = _page(state, outcome.result, match["key"], shown=shown, offset=offset)
    await _send_to(context, chat.id, fmt.answer_reply(page), reply_to=reply_to, markup=markup)


async def on_error(update: object, context: Context) -> None:
    """Log an unexpected error (token removed) and tell the user something went wrong.

    A failed getUpdates (no update) that is a network fault gets one line: PTB polls again.
    """
    error = context.error
    if update is None and isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        kind, reason = type(error).__name__, _redact(error.message, context)
        log.warning("Polling Telegram failed (%s: %s); polling again.", kind, reason)
        return
    details = "".join(traceback.format_exception(error)) if error else "unknown error"
    log.error("Unexpected error while handling an update:\n%s", _redact(details, context))
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(fmt.FAILURE)
        elif update.effective_chat is not None:
            await _send_to(context, update.effective_chat.id, fmt.notice_reply(fmt.FAILURE))
    except TelegramError as failure:  # the edge: nothing is left to tell the user with
        log.warning("Could not report the error to the chat: %s", _redact(str(failure), context))


def addressed_question(message: Message, *, bot_id: int, username: str | None) -> str | None:
    """The question in a group message addressed to the bot, or None when it is chatter.

    A message mentioning `@username` is addressed (the mention is removed from the question);
    so is a reply to one of the bot's own messages. An addressed message with nothing else in
    it gives "" (the caller shows the usage).
    """
    text = message.text or ""
    if username:
        mention = re.compile(rf"@{re.escape(username)}\b", re.IGNORECASE)
        if mention.search(text):
            return " ".join(mention.sub(" ", text).split())
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return text.strip()
    return None


def quiet_token_loggers() -> None:
    """Keep the loggers whose lines contain the bot token at WARNING."""
    for name in TOKEN_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class SecretFilter(logging.Filter):
    """Replaces secrets in a record's message and traceback: a second line of defence."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without the secrets; never drops it."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        for secret in self.secrets:
            if secret in message:
                message = message.replace(secret, "<secret>")
                record.msg, record.args = message, None
            if record.exc_text and secret in record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "<secret>")
        return True


def redact_logs(*secrets: str | None) -> None:
    """Add a `SecretFilter` to the root logger's handlers (set up by the entry point)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(*(secret for secret in secrets if secret)))


async def _admitted(update: Update, context: Context) -> bool:
    """Whether the chat may use the bot; if not, send one short refusal and no archive text."""
    allowed = _state(context.bot_data).settings.allowed_chat_ids
    chat = update.effective_chat
    if not allowed or (chat is not None and chat.id in allowed):
        return True
    log.info("Refused chat %s: not in ARCHIVE_BOT_ALLOWED_CHAT_IDS.", chat and chat.id)
    if update.callback_query is not None:
        await update.callback_query.answer(fmt.REFUSAL)
    elif update.effective_message is not None:
        await _send(context, update.effective_message, fmt.notice_reply(fmt.REFUSAL))
    return False


async def _answer(update: Update, context: Context, text: str) -> None:
    """Rate-limit, prepare, search and reply to one question (compact in groups)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    state = _state(context.bot_data)
    admission = state.limit.check(chat.id)
    if admission is not Admission.ANSWER:
        if admission is Admission.WARN:
            await _send(context, message, fmt.notice_reply(fmt.SLOW_DOWN))
        return
    question = prepare(text)
    compact = chat.type != ChatType.PRIVATE
    if question.problem is Problem.EMPTY:
        usage = fmt.usage_reply() if compact else fmt.notice_reply(fmt.EMPTY_QUESTION)
        await _send(context, message, usage)
        return
    if state.settings.log_questions:
        user = update.effective_user
        name = clean(user.full_name) if user else None
        log.info("Question from %s in chat %s: %s", name, chat.id, question.text)
    if question.problem is None and state.typing.due(chat.id):
        await _typing(context, chat.id)
    outcome = await _search(state, question, offset=0)
    shown = 1 if compact else state.settings.top_k
    page, markup = _page(state, outcome.result, None, shown=shown, offset=0)
    reply = fmt.outcome_reply(replace(outcome, result=page), compact=compact)
    await _send(context, message, reply, markup=markup)


async def _typing(context: Context, chat_id: int) -> None:
    """Show "typing…" while searching; failing to is no reason to withhold the answer."""
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as error:
        log.debug("Could not send the typing action: %s", _redact(str(error), context))


async def _search(state: BotState, question: Question, *, offset: int) -> Outcome:
    """Search in a worker thread (so one slow query stalls no other chat), one hit extra.

    The extra hit tells whether a "更多" button has anything to show.
    """
    started = time.perf_counter()
    outcome = await asyncio.to_thread(
        ask_searcher, state.searcher, question, top_k=state.settings.top_k + 1, offset=offset
    )
    hits = len(outcome.result.hits)
    log.debug("Searched in %.3f s: %d hits.", time.perf_counter() - started, hits)
    return outcome


def _page(
    state: BotState, result: Result, key: str | None, *, shown: int, offset: int
) -> tuple[Result, InlineKeyboardMarkup | None]:
    """The first `shown` hits, and a "更多" button when more hits follow."""
    if len(result.hits) <= shown:
        return result, None
    key = key or state.questions.put(result.question)
    button = InlineKeyboardButton(fmt.MORE_BUTTON, callback_data=f"more:{key}:{offset + shown}")
    return replace(result, hits=result.hits[:shown]), InlineKeyboardMarkup([[button]])


async def _send(
    context: Context,
    message: Message,
    reply: fmt.Reply,
    *,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Reply to a message (quoting it in groups)."""
    quote = message.chat.type != ChatType.PRIVATE
    reply_to = message.message_id if quote else None
    await _send_to(context, message.chat_id, reply, reply_to=reply_to, markup=markup)


async def _send_to(
    context: Context,
    chat_id: int,
    reply: fmt.Reply,
    *,
    reply_to: int | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Send a reply as HTML; if Telegram cannot parse its entities, as plain text."""
    parameters = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
    try:
        await context.bot.send_message(
            chat_id,
            reply.html(),
            parse_mode="HTML",
            link_preview_options=NO_PREVIEW,
            reply_parameters=parameters,
            reply_markup=markup,
        )
    except BadRequest as error:
        if "can't parse entities" not in error.message.lower():
            raise
        log.warning("Telegram rejected the HTML (%s); resending as plain text.", error.message)
        await context.bot.send_message(
            chat_id,
            reply.text(limit=fmt.TELEGRAM_MAX_CHARS),
            link_preview_options=NO_PREVIEW,
            reply_parameters=parameters,
            reply_markup=markup,
        )


def _state(bot_data: dict[str, object]) -> BotState:
    state = bot_data[STATE_KEY]
    if not isinstance(state, BotState):
        raise TypeError(f"bot_data[{STATE_KEY!r}] is not a BotState")
    return state


def _redact(text: str, context: Context) -> str:
    return text.replace(context.bot.token, "<token>")
