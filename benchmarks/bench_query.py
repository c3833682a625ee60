"""Query latency of `Searcher.search` alone, at one archive size (default 100k passages).

Builds (once, then reuses) an archive of real news passages with `bench_corpus.ensure_archive`
and archive-bot's index of it, draws questions the way `bench.py` does (spans of 4–30
characters of random passages), and times `Searcher.search` per question after a warm-up.
Run it against two checkouts to compare them on the same machine in the same session:

    python benchmarks/bench_query.py --index /tmp/idx-new
    PYTHONPATH=/tmp/old-checkout python benchmarks/bench_query.py --index /tmp/idx-old
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_corpus import ArchiveInfo, ensure_archive  # noqa: E402
from bench_engines import CONFIG_DIR, draw_queries  # noqa: E402

CORPUS_TARBALL = HERE.parent.parent / "shared" / "bench" / "news-corpus.tar.gz"


def say(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def corpus(work: Path) -> Path:
    """The news corpus, unpacked into `work` on first use."""
    folder = work / "news"
    if not folder.is_dir():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(CORPUS_TARBALL), "-C", str(work)], check=True)
    return folder


def archive(work: Path, size: int, seed: int) -> Path:
    """The archive of `size` passages; one made before is reused even if the splitter changed.

    Both checkouts compared must search the same passages, so the archive is made once.
    """
    folder = work / "archives" / str(size)
    try:
        info = ArchiveInfo(**json.loads((folder / "manifest.json").read_text("utf-8")))
        if (info.target, info.seed) == (size, seed):
            return folder
    except (OSError, TypeError, ValueError):
        pass
    ensure_archive(corpus(work), folder, size, seed, say)
    return folder


def main(argv: list[str] | None = None) -> int:
    """Build or open the index, then print p50/p95 of `Searcher.search` as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the questions")
    parser.add_argument("--work", type=Path, default=Path("/tmp/archive-bot-bench-query"))
    parser.add_argument("--index", type=Path, required=True, help="this checkout's index root")
    args = parser.parse_args(argv)

    from retrieval.search import Searcher, Synonyms
    from retrieval.segments import build_index
    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    folder = archive(args.work, args.size, args.seed)
    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    if not (args.index / "CURRENT").is_file():
        say(f"building the index of {folder} at {args.index}")
        build_index(folder, args.index, tokenizer)
    index = open_index(args.index)
    searcher = Searcher(index, tokenizer, synonyms=Synonyms.from_file(CONFIG_DIR / "synonyms.txt"))
    questions = [
        q.text
        for q in draw_queries(index.passages, lambda t: (tokenizer.words(t), []), args.queries, 1)
    ]
    for text in questions[:100]:  # warm-up: page cache, word-id memo, scratch arrays
        searcher.search(text, top_k=args.top_k)
    times = []
    for _ in range(args.rounds):  # the best of a few passes per question: the machine is shared
        one = []
        for text in questions:
            started = time.perf_counter()
            searcher.search(text, top_k=args.top_k)
            one.append(time.perf_counter() - started)
        times.append(one)
    best = np.min(np.array(times), axis=0) * 1e3
    result = {
        "passages": len(index.passages),
        "queries": len(questions),
        "p50_ms": round(float(np.percentile(best, 50)), 3),
        "p95_ms": round(float(np.percentile(best, 95)), 3),
        "mean_ms": round(float(best.mean()), 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
