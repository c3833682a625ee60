"""The `archive-bot` command: ask, show, index, repl, eval and telegram.

The entry point loads settings once, sets up logging, and turns every error this project raises
on purpose into one line on stderr that says what to do next, with a non-zero exit code.

`ask` meets bad questions like the REPL and the bot (`bot.questions`): an empty question is an
error (exit 2); one with nothing to search, or no hits, is an answer without passages (exit 0,
and `answer: null, passages: []` in JSON); an overlong one is searched by its beginning.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from bot import format as fmt
from bot.engine import build, open_searcher
from bot.errors import BotError
from bot.paging import Page, ask_page
from bot.questions import Problem, prepare
from bot.settings import Settings
from retrieval.errors import RetrievalError
from retrieval.ids import id_of
from retrieval.models import Result
from retrieval.reading import FullArticle


def result_json(result: Result, *, question: str | None = None) -> dict[str, object]:
    """The `ask --json` object (the contract in README); `question` as asked, if given."""
    return {
        "question": result.question if question is None else question,
        "answer": result.answer.sentence if result.answer else None,
        "short_answer": result.answer.short_text if result.answer else None,
        "passages": [
            {
                "id": id_of(hit.passage.passage_id),
                "rank": hit.rank,
                "score": round(hit.score, 6),
                "text": hit.passage.text,
                "source": {
                    "file": hit.passage.source.file,
                    "title": hit.passage.source.title,
                    "paragraph": hit.passage.source.paragraph,
                    "start": hit.passage.source.start,
                    "end": hit.passage.source.end,
                    "date": _iso(hit.passage.source.date),
                },
            }
            for hit in result.hits
        ],
    }


def article_json(article: FullArticle) -> dict[str, object]:
    """The `show --json` object (the contract in README)."""
    return {
        "id": article.id,
        "file": article.file,
        "title": article.title,
        "date": _iso(article.date),
        "text": article.text,
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _questions(args: argparse.Namespace) -> Iterator[str]:
    if args.question == "-":
        yield from (line.strip() for line in sys.stdin if line.strip())
    else:
        yield args.question


def cmd_ask(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Answer one question (or one a line from stdin with `-`)."""
    if args.question != "-" and prepare(args.question).problem is Problem.EMPTY:
        # Said before the index is loaded: there is nothing to search.
        raise BotError(fmt.EMPTY_COMMAND_LINE_QUESTION)
    searcher = open_searcher(settings)
    top = args.top or settings.top_k
    for raw in _questions(args):
        question = prepare(raw)
        try:
            if question.problem is Problem.EMPTY:
                raise BotError(fmt.EMPTY_COMMAND_LINE_QUESTION)
            # One page, exactly `top` passages: the answer is taken from the passages shown.
            outcome = ask_page(searcher, Page(question, size=top), peek=False).outcome
        except (RetrievalError, BotError) as error:
            if args.question != "-":
                raise
            if args.json:
                print(_json_line({"question": raw, "error": str(error)}), file=out, flush=True)
            else:
                print(f"archive-bot: {error}", file=sys.stderr)
            continue
        if args.json:
            print(_json_line(result_json(outcome.result, question=raw)), file=out, flush=True)
        else:
            print(fmt.outcome_reply(outcome).text(), file=out, flush=True)
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Print the whole article holding a passage, by the id `ask --json` gave it."""
    article = open_searcher(settings).article(args.id.strip())
    if args.json:
        print(_json_line(article_json(article)), file=out)
    else:
        print(fmt.article_reply(article).text(), file=out)
    return 0


def _json_line(value: dict[str, object]) -> str:
    """One line of JSON, as UTF-8 text; ASCII escapes where it cannot be (lone surrogates)."""
    line = json.dumps(value, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return line


def cmd_index(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Update the index of the configured archive (--full: rebuild it; --status: show it)."""
    from tqdm import tqdm

    if args.status:
        return _index_status(settings, out, as_json=args.json)
    total = sum(p.stat().st_size for p in settings.archive_dir.rglob("*.txt") if p.is_file())
    with tqdm(total=total, unit="B", unit_scale=True, desc="indexing", file=sys.stderr) as bar:
        stats = build(settings, progress=bar.update, full=args.full)
    what = "Indexed" if stats.full else f"Updated ({stats.changes.summary()})"
    print(
        f"{what} {settings.archive_dir}: {stats.files} files, {stats.articles} articles, "
        f"{stats.passages} passages, {stats.tokens} tokens in {stats.seconds:.1f} s, "
        f"{stats.segments} segment(s) → {settings.resolved_index_dir}",
        file=out,
    )
    for name in stats.skipped:
        print(f"skipped: {name}", file=out)
    return 0


def _index_status(settings: Settings, out: TextIO, *, as_json: bool) -> int:
    """Print the index's segments and what changed in the archive since its last update."""
    from retrieval.segments import NAMES_SHOWN, index_status

    status = index_status(settings.archive_dir, settings.resolved_index_dir)
    pending = status.pending
    if as_json:
        value = {
            "index": str(settings.resolved_index_dir),
            "segments": [asdict(info) for info in status.segments],
            "passages": {"live": status.live, "deleted": status.deleted},
            "files": status.files,
            "pending": {
                kind: {"count": len(names), "names": list(names[:NAMES_SHOWN])}
                for kind, names in asdict(pending).items()
            },
            "updated": datetime.fromtimestamp(status.updated, UTC).isoformat(),
        }
        print(_json_line(value), file=out)
        return 0
    updated = datetime.fromtimestamp(status.updated, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"Index {settings.resolved_index_dir}, last updated {updated}", file=out)
    print(f"{status.live} passages live, {status.deleted} deleted, {status.files} files", file=out)
    for info in status.segments:
        size = f"{info.bytes / 1e6:.1f} MB"
        print(f"  {info.name}: {info.passages} passages, {info.deleted} deleted, {size}", file=out)
    print(f"Archive since: {pending.summary()}", file=out)
    for kind, names in asdict(pending).items():
        for name in names[:NAMES_SHOWN]:
            print(f"  {kind}: {name}", file=out)
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Recall@1/3/5, MRR, answer-hit rate and the short answer's EM and F1."""
    from retrieval.evaluate import evaluate, load_questions

    questions = load_questions(args.questions)
    searcher = open_searcher(settings)
    report = evaluate(questions, lambda q: searcher.ask(q, top_k=5)).as_dict()
    if args.json:
        print(json.dumps(report, ensure_ascii=False), file=out)
        return 0
    n = report["questions"]
    print(f"questions   {n}", file=out)
    for k in (1, 3, 5):
        print(f"recall@{k}    {report[f'recall@{k}']:.3f}  ({report[f'hits@{k}']}/{n})", file=out)
    print(f"MRR         {report['mrr']:.3f}", file=out)
    print(f"answer-hit  {report['answer_hit']:.3f}  ({report['answer_hits']}/{n})", file=out)
    print(f"short EM    {report['short_em']:.3f}  (the exact answer, as CMRC 2018)", file=out)
    print(f"short F1    {report['short_f1']:.3f}  (characters, longest common run)", file=out)
    print(f"missed (not in top 5): {' '.join(report['missed']) or '-'}", file=out)  # type: ignore[arg-type]
    print(f"not first: {' '.join(report['not_first']) or '-'}", file=out)  # type: ignore[arg-type]
    return 0


def cmd_repl(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Interactive loop for testing."""
    from bot.refresh import Refresher
    from bot.repl import run_repl

    searcher = open_searcher(settings)
    stop = threading.Event()
    if settings.refresh_seconds > 0:  # updates in a thread; the searcher switches between prompts
        Refresher(settings, searcher).start_thread(stop)
    try:
        return run_repl(searcher, top_k=args.top or settings.top_k, out=out)
    finally:
        stop.set()


def cmd_telegram(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url)."""
    from bot.telegram import run

    run(
        settings,
        webhook_url=args.webhook_url,
        listen=args.listen,
        port=args.port,
        drop_pending_updates=args.drop_pending_updates,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    root = argparse.ArgumentParser(
        prog="archive-bot", description="Ask questions about a Chinese newspaper archive."
    )
    root.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = root.add_subparsers(dest="command", required=True)
    ask = sub.add_parser("ask", help="answer a question", description=cmd_ask.__doc__)
    ask.add_argument(
        "question", help=f'the question, e.g. "{fmt.EXAMPLE_QUESTION}"; "-" reads stdin'
    )
    ask.add_argument("--json", action="store_true", help="print JSON (JSONL with -)")
    ask.add_argument("--top", type=_positive, help="how many passages (default 3)")
    ask.set_defaults(run=cmd_ask)
    show = sub.add_parser(
        "show", help="print a passage's whole article", description=cmd_show.__doc__
    )
    show.add_argument("id", help='a passage id, e.g. the "id" of a passage of ask --json')
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(run=cmd_show)
    index = sub.add_parser("index", help="update the index", description=cmd_index.__doc__)
    index.add_argument("--full", action="store_true", help="rebuild it from scratch")
    index.add_argument("--status", action="store_true", help="show segments and changes")
    index.add_argument("--json", action="store_true", help="--status as JSON")
    index.set_defaults(run=cmd_index)
    repl = sub.add_parser("repl", help="interactive loop for testing")
    repl.add_argument("--top", type=_positive, help="passages per page")
    repl.set_defaults(run=cmd_repl)
    ev = sub.add_parser("eval", help="measure recall on a questions file")
    ev.add_argument("questions", type=Path, help="JSONL file like shared/eval/seed_qa.jsonl")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.set_defaults(run=cmd_eval)
    tg = sub.add_parser("telegram", help="run the Telegram bot")
    tg.add_argument("--webhook-url", help="serve a webhook at this public URL instead of polling")
    tg.add_argument("--listen", default="0.0.0.0", help="webhook listen address")
    tg.add_argument("--port", type=int, default=8443, help="webhook port")
    tg.add_argument("--drop-pending-updates", action="store_true", help="skip queued messages")
    tg.set_defaults(run=cmd_telegram)
    return root


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError("must be between 1 and 50")
    return value


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"ARCHIVE_BOT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise BotError(f"Invalid settings: {problems}.") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `archive-bot` console script."""
    args = parser().parse_args(argv)
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        # A stray byte that is not UTF-8 (stdin) or a character that cannot be printed in the
        # terminal's encoding (stdout) is shown as a replacement character, not a traceback.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines hold the token
    try:
        settings = _load_settings()
        if not settings.archive_dir.is_dir():
            raise BotError(
                f"Archive folder {settings.archive_dir} does not exist. "
                "Set ARCHIVE_BOT_ARCHIVE_DIR to a folder of .txt files."
            )
        return args.run(args, settings, sys.stdout)
    except (RetrievalError, BotError) as error:
        print(f"archive-bot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
