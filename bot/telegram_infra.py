"""Front end "answer → Telegram", the plumbing under the handlers (`bot.telegram`).

Nothing here reads an update or formats a reply; each piece is a small object the handlers ask
one question of:

- `Redactor`: the one place the bot token (and the webhook secret) is blanked out of a text;
  the log filter (`SecretFilter`), the error handler, retry warnings and start-up errors all
  call it.
- `Allowlist` and `ChatRateLimit`: admission. May this chat ask at all, and may it ask once
  more this minute (`Admission.ANSWER`), or is it told to slow down (`WARN`, once) or ignored
  (`IGNORE`)?
- `TypingThrottle`: at most one "typing…" action per chat every five seconds.
- `QuestionStore`: recent questions under short keys, for "更多" buttons.
- `RetryingRateLimiter`: Telegram's flood limits and retries. A 429 waits `retry_after` and
  retries (`AIORateLimiter`); a 5xx, a dropped connection or a timeout is retried after a short
  pause, a few times.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from telegram.error import BadRequest, NetworkError
from telegram.ext import AIORateLimiter

from bot.questions import Question

log = logging.getLogger(__name__)

# Loggers whose lines contain the bot token (httpx: request URLs; PTB: "Set Bot API URL").
TOKEN_LOGGERS = ("httpx", "httpcore", "telegram.Bot", "telegram.ext.ExtBot")
REDACTED = "<secret>"
MAX_RETRIES = 3  # for HTTP 429 (RetryAfter); a refused send was not carried out
NETWORK_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # pauses before retrying a 5xx, drop or timeout
NOT_RETRIED = frozenset({"sendChatAction"})  # a late "typing…" is worse than none
QUESTIONS_KEPT = 2048  # "更多" buttons stay usable for this many recent questions
CHATS_TRACKED = 10_000  # beyond this many chats, the rate limit forgets idle ones
TYPING_SECONDS = 5.0  # Telegram shows "typing…" this long: one action per chat per period


# Redaction ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redactor:
    """Blanks secrets (the bot token, the webhook secret) out of any text."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, *secrets: str | None) -> Redactor:
        """A redactor for the secrets that are set (None and "" are skipped)."""
        return cls(tuple(secret for secret in secrets if secret))

    def __call__(self, text: str) -> str:
        """The text with every secret replaced by `REDACTED`."""
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class SecretFilter(logging.Filter):
    """Redacts a record's message and traceback: a second line of defence."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without the secrets; never drops it."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


def redact_logs(redact: Redactor) -> None:
    """Add a `SecretFilter` to the root logger's handlers (set up by the entry point)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(SecretFilter(redact))


def quiet_token_loggers() -> None:
    """Keep the loggers whose lines contain the bot token at WARNING."""
    for name in TOKEN_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


# Admission ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowlist:
    """The chats that may use the bot; an empty list lets every chat in."""

    chat_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, chat_ids: Iterable[int]) -> Allowlist:
        """An allowlist of these chat ids."""
        return cls(frozenset(chat_ids))

    def admits(self, chat_id: int | None) -> bool:
        """Whether a chat (None: an update without one) may use the bot."""
        return not self.chat_ids or chat_id in self.chat_ids


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


# Typing and buttons ---------------------------------------------------------------------------


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
        self._questions: OrderedDict[str, Question] = OrderedDict()

    def put(self, question: Question) -> str:
        """Keep a question and return its key, forgetting the oldest beyond `size`."""
        key = secrets.token_urlsafe(6)
        self._questions[key] = question
        while len(self._questions) > self.size:
            self._questions.popitem(last=False)
        return key

    def get(self, key: str) -> Question | None:
        """The question kept under a key, or None when it was forgotten (or never kept)."""
        return self._questions.get(key)


# The Bot API's faults -------------------------------------------------------------------------


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
        redact: Redactor | None = None,
    ) -> None:
        super().__init__(max_retries=max_retries)
        self.delays = tuple(NETWORK_RETRY_DELAYS if delays is None else delays)
        self.redact = redact or Redactor()

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
