"""`archive-bot repl`: an interactive loop for maintainers to try questions.

Line editing and history come from `readline` (history kept in the per-user cache folder);
`:more` shows the next passages of the last question, `:quit` (or Ctrl-D / Ctrl-C) leaves.
Questions go through the same `bot.questions.prepare` and pure formatting as the CLI and the
Telegram bot, so an empty, unsearchable or overlong question gets the same reply everywhere.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TextIO

from platformdirs import user_cache_dir

from bot import format as fmt
from bot.engine import ask
from bot.questions import prepare
from retrieval.errors import RetrievalError
from retrieval.search import Searcher

log = logging.getLogger(__name__)

PROMPT = "问> "
HELP = "Type a question in Chinese. :more shows more passages, :help this text, :quit leaves."


def _setup_history() -> Path | None:
    try:
        import readline
    except ImportError:  # no readline on this platform: plain input() still works
        return None
    path = Path(user_cache_dir("archive-bot")) / "repl_history"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return path


def _save_history(path: Path | None) -> None:
    if path is None:
        return
    import readline

    with contextlib.suppress(OSError):
        readline.write_history_file(path)


def answer_line(
    line: str, state: dict[str, object], searcher: Searcher, top_k: int, *, bold: bool = False
) -> str:
    """The REPL's reply to one input line (a question or a command); bold: ANSI highlights."""
    if line in (":help", ":h", "?"):
        return HELP
    if line == ":more":
        question = state.get("question")
        if not isinstance(question, str):
            return "Ask a question first."
        offset = int(state.get("offset", 0)) + top_k  # type: ignore[call-overload]
        state["offset"] = offset
        result = searcher.ask(question, top_k=top_k, offset=offset)
        return fmt.render_plain(result) if result.hits else "No more passages."
    outcome = ask(searcher, prepare(line), top_k=top_k)
    state["question"], state["offset"] = outcome.question.text, 0
    reply = fmt.outcome_reply(outcome)
    return reply.terminal() if bold else reply.text()


def run_repl(searcher: Searcher, *, top_k: int, out: TextIO) -> int:
    """Read questions until :quit, Ctrl-D or Ctrl-C; one bad question never ends the loop."""
    info = searcher.info
    print(f"archive-bot: {info.archive}, {info.articles} articles. {HELP}", file=out)
    history = _setup_history()
    state: dict[str, object] = {}
    try:
        while True:
            try:
                line = input(PROMPT).strip()
            except (EOFError, KeyboardInterrupt):
                print(file=out)
                return 0
            if line in (":quit", ":q", ":exit"):
                return 0
            if not line:
                continue
            try:
                bold = out.isatty()  # escape codes only where a terminal shows them
                print(answer_line(line, state, searcher, top_k, bold=bold), file=out, flush=True)
            except RetrievalError as error:
                print(f"! {error}", file=out)
            except Exception:  # the edge of the loop: a bug in one answer must not end it
                log.exception("Could not answer %r", line)
                print("! Unexpected error (logged); ask another question.", file=out)
    finally:
        _save_history(history)
