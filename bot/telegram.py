"""Front end "answer → Telegram": the python-telegram-bot application and its handlers.

Each handler is thin: parse the update, search off the event loop, format with `bot.format`,
reply. Private chats: any text is a question. Groups (privacy mode on): `/ask question`,
`@bot question` and replies to the bot's messages are questions; other chatter is ignored.
Replies in groups are compact, with a "更多" button for the next passages.

One question, from update to reply:

1. A message `Update` reaches `private_text`, `ask` or `group_text`; a "更多" press reaches
   `more`, which reads its `MoreButton` (question key, next offset) and finds the prepared
   `Question` again in the `QuestionStore`.
2. `_admitted`: the chat is on the `Allowlist`, or it gets one refusal and nothing else.
3. The handler says where the reply goes (`Asked`: the chat, the message to quote, compact in
   groups, the pressed button) and which passages (`bot.paging.Page`: the `Question` from
   `bot.questions.prepare`, `top_k` of them, from an offset).
4. `_respond`, one path for both: admission by the chat's `ChatRateLimit` (`Admission`), then
   `bot.paging.ask_page` in a worker thread (a `Paged`), `bot.format.outcome_reply` (a
   `Reply`), sent as HTML with a new `MoreButton` when `Paged.more()` finds passages left.

Reading on: every answer carries a "全文" `ArticleButton` (the best passage's short id and a
page, nothing in memory, so it outlives restarts); `read_on` sends the article a page at a
time and "上一页"/"下一页" edit that message. Each source links to `/start <id>` in this bot
(the username comes from getMe), which `start` opens the same way. `inline` answers
`@bot 问题` typed in any chat with up to five `InlineQueryResultArticle`s, for allowed users
only. An id the rebuilt archive no longer holds is told so (`fmt.ARTICLE_GONE`).

Handlers read what they share from `context.bot_data`, a `BotData` (python-telegram-bot's
`ContextTypes`): the settings, the searcher and the plumbing of `bot.telegram_infra`
(allowlist, per-chat rate limit, typing throttle, "更多" question store, the token `Redactor`).

Questions are prepared like everywhere else (`bot.questions`): an empty one gets the usage,
one with nothing to search is told so without searching, an overlong one is searched by its
beginning. Every question and every "更多", "全文" or page press counts against its chat's
rate limit, so one chat cannot starve the others; the allowlist is checked first, for
messages, commands and button presses alike (inline queries: by the user's id).

Faults of the Bot API are met by `RetryingRateLimiter`; getUpdates is retried by PTB's polling
loop, and an update is confirmed only by the next getUpdates, so none is lost. On SIGTERM the
updates already fetched are answered and confirmed before the process exits. The bot token is
a secret: it is never logged (`Redactor`, `SecretFilter`, `quiet_token_loggers`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
    User,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackContext,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ExtBot,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot import format as fmt
from bot.engine import open_searcher
from bot.errors import BotError, ConfigError
from bot.paging import Page, Paged, ask_page
from bot.questions import Problem, Question, clean, prepare
from bot.refresh import Refresher
from bot.settings import Settings
from bot.telegram_infra import (
    Admission,
    Allowlist,
    ChatRateLimit,
    QuestionStore,
    Redactor,
    RetryingRateLimiter,
    TypingThrottle,
    quiet_token_loggers,
    redact_logs,
)
from retrieval.errors import PassageGoneError
from retrieval.ids import ID_CHARS, id_of
from retrieval.models import Passage, Result
from retrieval.reading import CHECK_CHARS, text_check
from retrieval.search import Searcher

log = logging.getLogger(__name__)

ALLOWED_UPDATES = (Update.MESSAGE, Update.CALLBACK_QUERY, Update.INLINE_QUERY)
INLINE_RESULTS = 5  # results offered for `@bot 问题` typed in any chat
INLINE_CACHE_SECONDS = 10  # short: the archive may be rebuilt, and results are per user
# What a button or a deep link names: a passage's short id, then the check of its text.
READ_ON = rf"(?P<id>[A-Za-z0-9_-]{{{ID_CHARS}}})(?P<check>[A-Za-z0-9_-]{{{CHECK_CHARS}}})?"
DEEP_LINK = re.compile(rf"^{READ_ON}$")
BOOTSTRAP_RETRIES = 3  # getMe / setWebhook at start-up: ride out a blip, then give up clearly
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # what Telegram accepts
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
COMMANDS = (
    BotCommand("start", "介绍：我知道什么、怎么问"),
    BotCommand("help", "怎么提问"),
    BotCommand("ask", "提问，例如 /ask " + fmt.EXAMPLE_QUESTION),
)


# Searches run in these many threads, not in asyncio's default pool (cores + 4 threads): a search
# keeps scoring buffers per thread (tens of MB at a million passages), and more threads than
# cores answer no faster, as the kernels run without the GIL.
SEARCH_THREADS = min(os.cpu_count() or 2, 4)


@dataclass(frozen=True, slots=True)
class BotData:
    """What every handler shares, as `context.bot_data`."""

    settings: Settings
    searcher: Searcher
    redact: Redactor
    allowlist: Allowlist
    limit: ChatRateLimit
    questions: QuestionStore = field(default_factory=QuestionStore)
    typing: TypingThrottle = field(default_factory=TypingThrottle)
    refresher: Refresher | None = None  # follows the archive (None: refresh_seconds is 0)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    searches: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(SEARCH_THREADS, thread_name_prefix="search")
    )


# ExtBot[int]: the rate limiter's argument type (AIORateLimiter: a retry count).
Context = CallbackContext[ExtBot[int], dict[Any, Any], dict[Any, Any], BotData]
BotApplication = Application[ExtBot[int], Context, dict[Any, Any], dict[Any, Any], BotData, Any]


@dataclass(frozen=True, slots=True)
class MoreButton:
    """What a "更多" button carries: the question's key and the offset of the next page."""

    PATTERN: ClassVar[re.Pattern[str]] = re.compile(
        r"^more:(?P<key>[\w-]{1,16}):(?P<offset>\d{1,4})$"
    )

    key: str
    offset: int

    @classmethod
    def parse(cls, data: object) -> MoreButton | None:
        """The button behind callback data, or None when it is not one (an older version's)."""
        match = cls.PATTERN.match(data) if isinstance(data, str) else None
        return cls(match["key"], int(match["offset"])) if match else None

    @property
    def data(self) -> str:
        """The callback data (Telegram allows 64 bytes)."""
        return f"more:{self.key}:{self.offset}"


@dataclass(frozen=True, slots=True)
class ArticleButton:
    """What a "全文", "上一页" or "下一页" button (or a `/start` deep link) carries: a passage's
    short id, the check of the text shown (`reading.text_check`) and a page.

    Nothing is kept in memory, so the button works after a restart, and the check tells a
    passage whose file has changed since; `turn` (上一页/下一页) edits the article message it
    is on, "全文" sends the article as a new message.
    """

    PATTERN: ClassVar[re.Pattern[str]] = re.compile(
        rf"^(?P<kind>full|page):{READ_ON}:(?P<page>\d{{1,4}})$"
    )

    passage_id: str
    check: str | None = None
    page: int = 1
    turn: bool = False

    @classmethod
    def of(cls, passage: Passage) -> ArticleButton:
        """The "全文" button of a passage shown."""
        return cls(id_of(passage.passage_id), text_check(passage.text))

    @classmethod
    def parse(cls, data: object) -> ArticleButton | None:
        """The button behind callback data, or None when it is not one."""
        match = cls.PATTERN.match(data) if isinstance(data, str) else None
        if match is None:
            return None
        return cls(match["id"], match["check"], int(match["page"]), match["kind"] == "page")

    @classmethod
    def linked(cls, payload: str) -> ArticleButton | None:
        """The article a `/start` payload (a deep link of a source) names, or None."""
        match = DEEP_LINK.match(payload)
        return cls(match["id"], match["check"]) if match else None

    @property
    def payload(self) -> str:
        """What a deep link carries: id and check, 24 characters."""
        return self.passage_id + (self.check or "")

    @property
    def data(self) -> str:
        """The callback data: at most 34 bytes of Telegram's 64."""
        return f"{'page' if self.turn else 'full'}:{self.payload}:{self.page}"


@dataclass(frozen=True, slots=True)
class Asked:
    """Where a question (or a "更多" press) came from and where its reply goes."""

    chat_id: int
    reply_to: int | None  # the message the reply quotes (groups, "更多" pages)
    compact: bool  # groups: the answer and the best passage only
    asker: str | None = None  # the user's name, logged only with ARCHIVE_BOT_LOG_QUESTIONS
    button: CallbackQuery | None = None  # a "更多" press: short notices answer the button

    @classmethod
    def by(cls, message: Message, user: User | None = None) -> Asked:
        """A message's asker: in groups the reply quotes it and is compact."""
        group = message.chat.type != ChatType.PRIVATE
        reply_to = message.message_id if group else None
        asker = clean(user.full_name) if user else None
        return cls(message.chat_id, reply_to=reply_to, compact=group, asker=asker)


# The application --------------------------------------------------------------------------------


def run(
    settings: Settings,
    *,
    webhook_url: str | None = None,
    listen: str = "0.0.0.0",
    port: int = 8443,
    drop_pending_updates: bool = False,
) -> None:
    """Answer questions on Telegram until SIGINT or SIGTERM: long polling, or a webhook."""
    redact = redactor(settings)  # first: it refuses a missing token
    secret = webhook_secret(settings) if webhook_url else None
    redact_logs(redact)
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
        raise BotError(
            f"Could not start the Telegram bot ({type(error).__name__}: "
            f"{redact(error.message)}). Check the network and ARCHIVE_BOT_TELEGRAM_BASE_URL, "
            "then start it again."
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


def redactor(settings: Settings) -> Redactor:
    """The `Redactor` of the settings' secrets: the bot token and the webhook secret."""
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    return Redactor.of(bot_token(settings), secret)


def build_application(settings: Settings, searcher: Searcher) -> BotApplication:
    """The application with its handlers, talking to `settings.telegram_base_url`."""
    quiet_token_loggers()
    redact = redactor(settings)
    data = BotData(
        settings,
        searcher,
        redact=redact,
        allowlist=Allowlist.of(settings.allowed_chat_ids),
        limit=ChatRateLimit(settings.chat_rate_limit),
        refresher=Refresher(settings, searcher) if settings.refresh_seconds > 0 else None,
    )
    # PTB makes `bot_data` by calling the type it is given, with no arguments: give it one that
    # returns the data built here.
    context_types = ContextTypes(bot_data=cast("type[BotData]", lambda: data))
    timeout = settings.telegram_timeout
    application = (
        ApplicationBuilder()
        .token(bot_token(settings))
        .base_url(settings.telegram_base_url)
        .context_types(context_types)
        .concurrent_updates(True)
        .rate_limiter(RetryingRateLimiter(redact=redact))
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .write_timeout(timeout)
        .pool_timeout(timeout)
        .get_updates_connect_timeout(timeout)
        .get_updates_read_timeout(timeout)
        .get_updates_write_timeout(timeout)
        .get_updates_pool_timeout(timeout)
        .post_init(post_init)
        .post_stop(post_stop)
        .build()
    )
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
            CallbackQueryHandler(read_on, pattern=ArticleButton.PATTERN),
            CallbackQueryHandler(more),
            InlineQueryHandler(inline),
        ]
    )
    application.add_error_handler(on_error)
    return application


async def post_init(application: BotApplication) -> None:
    """Register the command menu and say which archive the bot serves."""
    data = application.bot_data
    try:
        await application.bot.set_my_commands(list(COMMANDS))
    except TelegramError as error:  # the menu is a convenience: answer questions without it
        reason = data.redact(error.message)
        log.warning("Could not set the command menu (%s); going on without it.", reason)
    info = data.searcher.info
    log.info(
        "Bot @%s answers questions about %s (%d articles).",
        application.bot.username,
        info.archive,
        info.articles,
    )
    if data.refresher is not None:  # an asyncio task: updates run in a worker thread
        data.tasks.add(asyncio.create_task(data.refresher.run(), name="archive-refresh"))
        log.info("Looking for archive changes every %g s.", data.settings.refresh_seconds)


async def post_stop(application: BotApplication) -> None:
    """Stop following the archive; end the search threads."""
    tasks = application.bot_data.tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
    application.bot_data.searches.shutdown(wait=False, cancel_futures=True)


# Handlers ---------------------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """Explain what the archive holds and how to ask (/start, /help); `/start ID` (a deep link
    from a source) opens that passage's article."""
    message = update.effective_message
    if message is None or not await _admitted(update, context):
        return
    linked = ArticleButton.linked(context.args[0]) if context.args else None
    if linked is not None:
        await _show_article(context, message.chat_id, linked)
        return
    info = context.bot_data.searcher.info
    await _send(
        context, Asked.by(message), fmt.help_reply(info, bot_username=context.bot.username)
    )


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
    await _send(context, Asked.by(message), fmt.notice_reply(fmt.TEXT_ONLY))


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
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None or not await _admitted(update, context):
        return
    button = MoreButton.parse(query.data)
    question = context.bot_data.questions.get(button.key) if button else None
    if button is None or question is None:
        await query.answer(fmt.STALE_BUTTON)
        return
    reply_to = query.message.message_id if query.message else None
    asked = Asked(chat.id, reply_to=reply_to, compact=False, button=query)
    page = Page(question, size=context.bot_data.settings.top_k, offset=button.offset)
    await _respond(context, asked, page, key=button.key)


async def read_on(update: Update, context: Context) -> None:
    """Show a page of the article behind a "全文", "上一页" or "下一页" button."""
    query, chat = update.callback_query, update.effective_chat
    if query is None or chat is None or not await _admitted(update, context):
        return
    button = ArticleButton.parse(query.data)
    if button is None:
        await query.answer(fmt.STALE_BUTTON)
        return
    if context.bot_data.limit.check(chat.id) is not Admission.ANSWER:  # like "更多" presses
        await query.answer(fmt.SLOW_DOWN)
        return
    edit = query.message.message_id if button.turn and query.message else None
    await _show_article(context, chat.id, button, pressed=query, edit=edit)


async def inline(update: Update, context: Context) -> None:
    """Answer `@bot 问题` typed in any chat with up to five passages to send; users not on the
    allowlist get no results."""
    query = update.inline_query
    if query is None:
        return
    data = context.bot_data
    results: list[InlineQueryResultArticle] = []
    question = prepare(query.query)
    if data.allowlist.admits(query.from_user.id) and question.problem is not Problem.EMPTY:
        paged = await _search(data, Page(question, size=INLINE_RESULTS), peek=False)
        results = inline_results(paged.outcome.result, _link(context))
    await query.answer(results, cache_time=INLINE_CACHE_SECONDS, is_personal=True)


def inline_results(result: Result, link: fmt.Link | None) -> list[InlineQueryResultArticle]:
    """One inline result a passage: listed by its answer or start, sending answer and source."""
    return [
        InlineQueryResultArticle(
            id=id_of(hit.passage.passage_id),
            title=fmt.inline_title(result, hit),
            description=fmt.inline_description(hit),
            input_message_content=InputTextMessageContent(
                fmt.inline_reply(result, hit, link=link).html(),
                parse_mode="HTML",
                link_preview_options=NO_PREVIEW,
            ),
        )
        for hit in result.hits
    ]


async def on_error(update: object, context: Context) -> None:
    """Log an unexpected error (secrets redacted) and tell the user something went wrong.

    A failed getUpdates (no update) that is a network fault gets one line: PTB polls again.
    """
    error, redact = context.error, context.bot_data.redact
    if update is None and isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        kind, reason = type(error).__name__, redact(error.message)
        log.warning("Polling Telegram failed (%s: %s); polling again.", kind, reason)
        return
    details = "".join(traceback.format_exception(error)) if error else "unknown error"
    log.error("Unexpected error while handling an update:\n%s", redact(details))
    if not isinstance(update, Update):
        return
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(fmt.FAILURE)
        elif update.effective_chat is not None:
            await _send_to(context, update.effective_chat.id, fmt.notice_reply(fmt.FAILURE))
    except TelegramError as failure:  # the edge: nothing is left to tell the user with
        log.warning("Could not report the error to the chat: %s", redact(str(failure)))


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


# The path every question takes ------------------------------------------------------------------


async def _admitted(update: Update, context: Context) -> bool:
    """Whether the chat may use the bot; if not, send one short refusal and no archive text."""
    chat = update.effective_chat
    if context.bot_data.allowlist.admits(chat.id if chat else None):
        return True
    log.info("Refused chat %s: not in ARCHIVE_BOT_ALLOWED_CHAT_IDS.", chat and chat.id)
    if update.callback_query is not None:
        await update.callback_query.answer(fmt.REFUSAL)
    elif update.effective_message is not None:
        await _send(context, Asked.by(update.effective_message), fmt.notice_reply(fmt.REFUSAL))
    return False


async def _answer(update: Update, context: Context, text: str) -> None:
    """Answer a message's text as a question: its first page, compact in groups."""
    message = update.effective_message
    if message is None:
        return
    asked = Asked.by(message, update.effective_user)
    page = Page(prepare(text), size=context.bot_data.settings.top_k)
    await _respond(context, asked, page)


async def _respond(context: Context, asked: Asked, page: Page, *, key: str | None = None) -> None:
    """Admission → search → page → send: one path for a question and for a "更多" press.

    `key` is the question's key in the store when a button asked for this page.
    """
    data = context.bot_data
    admission = data.limit.check(asked.chat_id)
    if admission is not Admission.ANSWER:
        # A pressed button spins until it is answered; a chat is told once, then ignored.
        if asked.button is not None or admission is Admission.WARN:
            await _notice(context, asked, fmt.SLOW_DOWN)
        return
    question = page.question
    if question.problem is Problem.EMPTY:
        usage = fmt.usage_reply() if asked.compact else fmt.notice_reply(fmt.EMPTY_QUESTION)
        await _send(context, asked, usage)
        return
    if page.offset == 0:  # a new question; a later page answers a button, which shows a spinner
        _log_question(data, asked, question)
        if question.problem is None and data.typing.due(asked.chat_id):
            await _typing(context, asked.chat_id)
    paged = await _search(data, page)
    if page.offset and not paged.outcome.result.hits:
        await _notice(context, asked, fmt.NO_MORE)
        return
    if asked.button is not None:
        await asked.button.answer()
    reply = fmt.outcome_reply(paged.outcome, compact=asked.compact, link=_link(context))
    markup = _answer_markup(data, paged, key, shown=1 if asked.compact else page.size)
    await _send(context, asked, reply, markup=markup)


def _log_question(data: BotData, asked: Asked, question: Question) -> None:
    """Log who asked what, only when the settings allow it (privacy)."""
    if data.settings.log_questions:
        log.info("Question from %s in chat %s: %s", asked.asker, asked.chat_id, question.text)


async def _typing(context: Context, chat_id: int) -> None:
    """Show "typing…" while searching; failing to is no reason to withhold the answer."""
    try:
        await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as error:
        log.debug("Could not send the typing action: %s", context.bot_data.redact(str(error)))


async def _search(data: BotData, page: Page, *, peek: bool = True) -> Paged:
    """Search a page in a worker thread, so that one slow query stalls no other chat."""
    started = time.perf_counter()
    search = functools.partial(ask_page, data.searcher, page, peek=peek)
    paged = await asyncio.get_running_loop().run_in_executor(data.searches, search)
    log.debug("Searched in %.3f s: %d hits.", time.perf_counter() - started, paged.found)
    return paged


def _answer_markup(
    data: BotData, paged: Paged, key: str | None, *, shown: int
) -> InlineKeyboardMarkup | None:
    """ "更多" when passages follow the `shown` ones, and "全文" for the first passage shown."""
    row = []
    following = paged.more(shown=shown)
    if following is not None:
        button = MoreButton(key or data.questions.put(following.question), following.offset)
        row.append(InlineKeyboardButton(fmt.MORE_BUTTON, callback_data=button.data))
    hits = paged.outcome.result.hits
    if hits:
        full = ArticleButton.of(hits[0].passage)
        row.append(InlineKeyboardButton(fmt.FULL_TEXT_BUTTON, callback_data=full.data))
    return InlineKeyboardMarkup([row]) if row else None


def _link(context: Context) -> fmt.Link | None:
    """Where a source links: the article in this bot (a deep link), once its username is known."""
    username = context.bot.username  # from getMe, which initialising the application calls
    if not username:
        return None
    return lambda passage: f"https://t.me/{username}?start={ArticleButton.of(passage).payload}"


async def _show_article(
    context: Context,
    chat_id: int,
    button: ArticleButton,
    *,
    pressed: CallbackQuery | None = None,
    edit: int | None = None,
) -> None:
    """Send (or, turning a page, edit to) a page of an article, with 上一页/下一页 buttons.

    An id the archive no longer holds (it was rebuilt since) is told so plainly.
    """
    try:
        article = context.bot_data.searcher.article(button.passage_id, check=button.check)
    except PassageGoneError:
        if pressed is not None:
            await pressed.answer(fmt.ARTICLE_GONE, show_alert=True)
        else:
            await _send_to(context, chat_id, fmt.notice_reply(fmt.ARTICLE_GONE))
        return
    pages = fmt.article_pages(article)
    page = min(max(button.page, 1), len(pages))
    reply = fmt.article_reply(article, page=page, pages=pages)
    markup = _page_markup(button, page, len(pages))
    if pressed is not None:
        await pressed.answer()
    if edit is None:
        await _send_to(context, chat_id, reply, markup=markup)
        return
    await context.bot.edit_message_text(
        reply.html(),
        chat_id=chat_id,
        message_id=edit,
        parse_mode="HTML",
        link_preview_options=NO_PREVIEW,
        reply_markup=markup,
    )


def _page_markup(button: ArticleButton, page: int, pages: int) -> InlineKeyboardMarkup | None:
    """上一页/下一页 for the pages before and after `page`, if any."""
    row = [
        InlineKeyboardButton(text, callback_data=replace(button, page=to, turn=True).data)
        for text, to, shown in (
            (fmt.PREVIOUS_BUTTON, page - 1, page > 1),
            (fmt.NEXT_BUTTON, page + 1, page < pages),
        )
        if shown
    ]
    return InlineKeyboardMarkup([row]) if row else None


async def _notice(context: Context, asked: Asked, text: str) -> None:
    """A short notice: the answer to a pressed button, else a message to the chat."""
    if asked.button is not None:
        await asked.button.answer(text)
    else:
        await _send(context, asked, fmt.notice_reply(text))


async def _send(
    context: Context,
    asked: Asked,
    reply: fmt.Reply,
    *,
    markup: InlineKeyboardMarkup | None = None,
) -> None:
    """Send a reply where the question came from, quoting it when `asked` says so."""
    await _send_to(context, asked.chat_id, reply, reply_to=asked.reply_to, markup=markup)


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
