"""Load on the Telegram bot: 50 group chats send 500 questions in 10 bursts to the real
`archive-bot telegram` process, polling a fake Bot API on 127.0.0.1 (tests/fakes).

    python benchmarks/load.py                      # 500 questions, 50 chats, 10 bursts
    python benchmarks/load.py --questions 2000 --chats 200

Records the time from update to reply (p50/p95/max), whether every question got exactly one
answer, and the bot's RSS, in the "Telegram load" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bot.settings import Settings  # noqa: E402
from tests.fakes.bot_api import FakeBotApi  # noqa: E402
from tests.fakes.harness import bot_process, stop, wait_started  # noqa: E402
from tests.fakes.load import LoadReport, archive_questions, burst_load, rss_mb  # noqa: E402

SECTION = "## Telegram load"


def main(argv: list[str] | None = None) -> int:
    """Run the load once and write its figures into RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between bursts")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder, FakeBotApi() as api:
        work = Path(folder)
        settings = Settings(archive_dir=REPO / "seeds", index_dir=work / "index")
        process = bot_process(api, settings, work)
        try:
            wait_started(api, process)
            report = burst_load(
                api,
                archive_questions(settings.archive_dir, args.questions),
                chats=args.chats,
                bursts=args.bursts,
                pause=args.pause,
                memory=lambda: rss_mb(process.pid),
            )
        finally:
            stop(process)
    print(report)
    write_section(args.results, render(report, args))
    return 0 if report.answered == report.questions and not report.repeated else 1


def render(report: LoadReport, args: argparse.Namespace) -> str:
    """The RESULTS.md section for one run."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    waits = f"{report.p50_s:.2f} s / {report.p95_s:.2f} s / {report.max_s:.2f} s"
    rate = report.questions / report.seconds
    return f"""{SECTION}

Measured {when} with `python benchmarks/load.py` ({args.questions} questions from
{args.chats} group chats in {args.bursts} bursts {args.pause} s apart, asked of the
`archive-bot telegram` process over the seeds, through the fake Bot API on 127.0.0.1).

| | |
|---|---|
| questions answered | {report.answered} of {report.questions} |
| answered more than once | {report.repeated} |
| update → reply p50 / p95 / max | {waits} |
| first question → last reply | {report.seconds:.1f} s ({rate:.1f} replies/s) |
| bot RSS after the load (peak) | {report.rss_mb:.0f} MB ({report.peak_rss_mb:.0f} MB) |

The replies are paced by Telegram's flood limits, which the bot keeps (python-telegram-bot's
`AIORateLimiter`: about 30 messages a second overall, 20 a minute per group): 500 replies
cannot leave in under ≈ 17 s, so the time from update to reply is the queue for the limiter,
not the search (a few milliseconds per question, in a worker thread).
"""


def write_section(results: Path, section: str) -> None:
    """Replace (or append) the load section of RESULTS.md, leaving the rest as it is."""
    text = results.read_text("utf-8") if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text.rstrip("\n") + "\n", "utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
