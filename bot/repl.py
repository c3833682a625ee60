"""`archive-bot repl`: an interactive loop for maintainers to try questions.

Line editing and history come from `readline` (history kept in the per-user cache folder);
`:more` shows the next passages of the last question (the next `bot.paging.Page`, kept in a
`ReplState`), `:open N` the whole article of the N-th passage shown (numbered as shown),
`:quit` (or Ctrl-D / Ctrl-C) leaves. The question's words are marked 【like this】.
Questions go through the same `bot.questions.prepare` and pure formatting as the CLI and the
Telegram bot, so an empty, unsearchable or overlong question gets the same reply everywhere.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from platformdirs import user_cache_dir

from bot import format as fmt
from bot.paging import Page, Paged, ask_page
from bot.questions import prepare
from retrieval.errors import RetrievalError
from retrieval.ids import id_of
from retrieval.search import Searcher

log = logging.getLogger(__name__)

PROMPT = "问> "
HELP = (
    "Type a question in Chinese. :more shows more passages, :open N the whole article of "
    "passage N, :help this text, :quit leaves."
)


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


@dataclass(frozen=True, slots=True)
class ReplState:
    """What `:more` continues (the page last shown, None before the first question) and what
    `:open N` opens (rank → short id of the passages shown so far for that question)."""

    page: Page | None = None
    shown: tuple[tuple[int, str], ...] = ()

    def after(self, paged: Paged) -> ReplState:
        """The state once a page is shown: its passages can be opened too."""
        hits = paged.outcome.result.hits
        earlier = self.shown if paged.page.offset else ()
        return ReplState(
            paged.page, earlier + tuple((h.rank, id_of(h.passage.passage_id)) for h in hits)
        )


def answer_line(
    line: str, state: ReplState, searcher: Searcher, top_k: int, *, bold: bool = False
) -> tuple[str, ReplState]:
    """The REPL's reply to one input line (a question or a command), and the state after it;
    bold: the exact answer in ANSI bold (only where a terminal shows it)."""
    if line in (":help", ":h", "?"):
        return HELP, state
    if line.startswith(":open"):
        return open_article(line, state, searcher), state
    if line == ":more":
        if state.page is None:
            return "Ask a question first.", state
        page = state.page.next()
        paged = ask_page(searcher, page, peek=False)
        if not paged.outcome.result.hits:
            return "No more passages.", replace(state, page=page)
        return _shown(paged, bold), state.after(paged)
    paged = ask_page(searcher, Page(prepare(line), size=top_k), peek=False)
    return _shown(paged, bold), ReplState().after(paged)


def open_article(line: str, state: ReplState, searcher: Searcher) -> str:
    """The reply to `:open N`: the whole article of the N-th passage shown."""
    number = line.removeprefix(":open").strip()
    ids = dict(state.shown)
    if not number.isdigit() or int(number) not in ids:
        shown = ", ".join(str(rank) for rank, _ in state.shown) or "none yet"
        return f"Usage: :open N, N the number of a passage shown ({shown})."
    return fmt.article_reply(searcher.article(ids[int(number)])).text()


def _shown(paged: Paged, bold: bool) -> str:
    """A page's reply as REPL text: searched words in 【】, the exact answer bold on a terminal."""
    reply = fmt.outcome_reply(paged.outcome)
    return reply.terminal() if bold else reply.text(marks=True)


def run_repl(searcher: Searcher, *, top_k: int, out: TextIO) -> int:
    """Read questions until :quit, Ctrl-D or Ctrl-C; one bad question never ends the loop."""
    info = searcher.info
    print(f"archive-bot: {info.archive}, {info.articles} articles. {HELP}", file=out)
    history = _setup_history()
    state = ReplState()
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
                reply, state = answer_line(line, state, searcher, top_k, bold=bold)
                print(reply, file=out, flush=True)
            except RetrievalError as error:
                print(f"! {error}", file=out)
            except Exception:  # the edge of the loop: a bug in one answer must not end it
                log.exception("Could not answer %r", line)
                print("! Unexpected error (logged); ask another question.", file=out)
    finally:
        _save_history(history)
