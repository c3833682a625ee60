"""A burst load on the bot through the fake Bot API: many group chats asking at once.

Used by the slow test (`tests/test_load.py`, every question answered exactly once) and by
`benchmarks/load.py` (the same run at full size, figures written to benchmarks/RESULTS.md).
Questions are pieces of the archive's own sentences, so most find something and some do not.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.fakes.bot_api import Call, FakeBotApi


def group(n: int) -> dict[str, Any]:
    """A supergroup chat of its own (each group has its own rate budgets)."""
    return {"id": -7000 - n, "type": "supergroup", "title": f"Readers {n}"}


def replied_to(call: Call) -> int | None:
    """The message id a sendMessage replies to."""
    reply = call.params.get("reply_parameters") or {}
    return reply.get("message_id")


def archive_questions(archive: Path, count: int, *, seed: int = 7) -> list[str]:
    """`count` questions: pieces (4–24 characters) of the archive's sentences, seeded."""
    sentences = [
        piece.strip()
        for path in sorted(archive.rglob("*.txt"))
        for piece in re.split(r"[。！？\n]", path.read_text("utf-8-sig", errors="replace"))
        if len(piece.strip()) >= 6
    ]
    rng = np.random.default_rng(seed)
    questions = []
    for _ in range(count):
        sentence = sentences[rng.integers(len(sentences))]
        length = int(rng.integers(4, min(24, len(sentence)) + 1))
        start = int(rng.integers(0, len(sentence) - length + 1))
        questions.append(sentence[start : start + length])
    return questions


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process and its peak so far, in MB (Linux /proc)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a burst load measured: answers per question and the time from update to reply."""

    questions: int
    chats: int
    bursts: int
    answered: int  # questions with at least one reply
    repeated: int  # questions with more than one reply
    empty: int  # replies with no text
    p50_s: float
    p95_s: float
    max_s: float
    seconds: float  # first question pushed → last reply sent
    rss_mb: float | None = None
    peak_rss_mb: float | None = None


def burst_load(
    api: FakeBotApi,
    questions: list[str],
    *,
    chats: int,
    bursts: int,
    pause: float,
    timeout: float = 180.0,
    settle: float = 0.5,
    memory: Callable[[], tuple[float, float]] | None = None,
) -> LoadReport:
    """Push `/ask` questions spread over `chats` groups in `bursts`, `pause` seconds apart;
    wait for the replies and measure them (a reply quotes its question in a group)."""
    pushed: dict[int, float] = {}
    per_burst = math.ceil(len(questions) / bursts)
    for number, text in enumerate(questions):
        if number and number % per_burst == 0:
            time.sleep(pause)
        at = time.monotonic()
        message = api.push_message(f"/ask {text}", chat=group(number % chats))
        pushed[message["message_id"]] = at
    with contextlib.suppress(TimeoutError):  # counted below: the report says how many
        api.wait_delivered(
            "sendMessage", lambda c: replied_to(c) in pushed, count=len(pushed), timeout=timeout
        )
    time.sleep(settle)  # a duplicate would arrive now
    replies = [c for c in api.delivered("sendMessage") if replied_to(c) in pushed]
    counts = Counter(replied_to(c) for c in replies)
    first: dict[int, float] = {}
    for call in sorted(replies, key=lambda c: c.at):
        first.setdefault(replied_to(call), call.at)  # type: ignore[arg-type]
    waits = np.array([first[m] - pushed[m] for m in first]) if first else np.zeros(1)
    memory_now = memory() if memory else (None, None)
    return LoadReport(
        questions=len(pushed),
        chats=chats,
        bursts=bursts,
        answered=len(first),
        repeated=sum(1 for n in counts.values() if n > 1),
        empty=sum(1 for c in replies if not str(c.params.get("text", "")).strip()),
        p50_s=float(np.percentile(waits, 50)),
        p95_s=float(np.percentile(waits, 95)),
        max_s=float(waits.max()),
        seconds=max(first.values(), default=0.0) - min(pushed.values()),
        rss_mb=memory_now[0],
        peak_rss_mb=memory_now[1],
    )
