"""Incremental updates on the whole news corpus (≈ 145k passages), against a full rebuild.

One run measures, on the same machine and in the same session:

- adding 10 broadcast-day files to an index of the rest: seconds until answerable (update +
  open + first search, in a process of its own, with its peak RSS), against a full rebuild of
  the same archive;
- removing 10 files, changing one (a paragraph appended);
- `Searcher.search` p50/p95 with 1, 10 and 50 segments (best of 2 passes over 500 questions);
- the running bot's pickup: a `bot.refresh.Refresher` thread (refresh interval 1 s) over the
  index, and the time from a page landing to the first search that finds it (a file is only
  taken once it is 2 s old, so 2 s of this is the still-being-written rule).

    python benchmarks/bench_update.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_engines import CONFIG_DIR, draw_queries  # noqa: E402
from bench_query import corpus, say  # noqa: E402

NEWS = "科技新闻\n\n首颗量子卫星墨子号今天发射成功,开展星地量子通信实验。\n"


def archive_of(files: list[Path], root: Path, folder: Path) -> Path:
    """An archive of hard links to some corpus files (quick to make, never written to)."""
    shutil.rmtree(folder, ignore_errors=True)
    for file in files:
        target = folder / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(file, target)
    return folder


def child_update(archive: Path, index: Path) -> None:
    """In a process of its own: update, open, first answer; seconds and peak RSS as JSON."""
    from retrieval.search import Searcher
    from retrieval.segments import update_index
    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    started = time.perf_counter()
    stats = update_index(archive, index, tokenizer, merge=False)
    updated = time.perf_counter()
    searcher = Searcher(open_index(index), tokenizer)
    opened = time.perf_counter()
    searcher.search("新闻联播", top_k=3)
    answered = time.perf_counter()
    print(json.dumps({
        "update_s": round(updated - started, 2),
        "open_s": round(opened - updated, 2),
        "answerable_s": round(answered - started, 2),
        "changes": stats.changes.summary(),
        "segments": stats.segments,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))  # fmt: skip


def timed_update(archive: Path, index: Path) -> dict[str, object]:
    """`child_update` in a subprocess."""
    done = subprocess.run(
        [sys.executable, __file__, "--child-update", str(archive), str(index)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def full_build(archive: Path, index: Path) -> float:
    """Seconds of a full build (both cores), in this process."""
    from retrieval.segments import build_index
    from retrieval.tokenize import Tokenizer

    shutil.rmtree(index, ignore_errors=True)
    started = time.perf_counter()
    build_index(archive, index, Tokenizer.from_config(CONFIG_DIR))
    return time.perf_counter() - started


def query_times(index: Path, questions: list[str]) -> dict[str, float]:
    """p50/p95 (ms) of Searcher.search over the questions: best of 2 passes each."""
    from retrieval.search import Searcher, Synonyms
    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    opened = time.perf_counter()
    synonyms = Synonyms.from_file(CONFIG_DIR / "synonyms.txt")
    searcher = Searcher(open_index(index), tokenizer, synonyms=synonyms)
    open_s = time.perf_counter() - opened
    for text in questions[:100]:
        searcher.search(text, top_k=3)
    passes = []
    for _ in range(2):
        one = []
        for text in questions:
            started = time.perf_counter()
            searcher.search(text, top_k=3)
            one.append(time.perf_counter() - started)
        passes.append(one)
    best = np.min(np.array(passes), axis=0) * 1e3
    return {
        "segments": len(searcher.index.manifest.segments),
        "open_s": round(open_s, 2),
        "p50_ms": round(float(np.percentile(best, 50)), 3),
        "p95_ms": round(float(np.percentile(best, 95)), 3),
    }


def pickup(archive: Path, index: Path) -> dict[str, float]:
    """Seconds from a page landing to the first answer from it, with a refresher running."""
    from bot.engine import open_searcher
    from bot.refresh import Refresher
    from bot.settings import Settings

    settings = Settings(archive_dir=archive, index_dir=index, refresh_seconds=1.0)
    searcher = open_searcher(settings)
    stop = threading.Event()
    Refresher(settings, searcher).start_thread(stop)
    page = archive / "landed.txt"
    time.sleep(1.5)
    page.write_text(NEWS, "utf-8")
    landed = time.perf_counter()
    try:
        while not any(h.passage.source.file == "landed.txt" for h in searcher.search("墨子号")):
            time.sleep(0.05)
            if time.perf_counter() - landed > 120:
                raise RuntimeError("the page was not picked up in 120 s")
    finally:
        stop.set()
    return {"refresh_s": 1.0, "landed_to_answer_s": round(time.perf_counter() - landed, 2)}


def main(argv: list[str] | None = None) -> int:
    """Run every measurement once and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/archive-bot-bench-update"))
    parser.add_argument("--child-update", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_update:
        child_update(*args.child_update)
        return 0
    work: Path = args.work
    news = corpus(work)
    files = sorted(news.rglob("*.txt"))
    results: dict[str, object] = {"files": len(files)}

    say("full rebuild of the whole corpus")
    whole = archive_of(files, news.parent, work / "whole")
    results["full_rebuild_s"] = round(full_build(whole, work / "idx-whole"), 1)

    say("adding 10 day files to an index of the rest")
    living = archive_of(files[:-10], news.parent, work / "living")
    results["base_build_s"] = round(full_build(living, work / "idx-living"), 1)
    for file in files[-10:]:
        os.link(file, living / file.relative_to(news.parent))
    results["add_10"] = timed_update(living, work / "idx-living")
    say("removing 10 files")
    for file in files[100:1100:100]:
        (living / file.relative_to(news.parent)).unlink()
    results["remove_10"] = timed_update(living, work / "idx-living")
    say("changing one file")
    changed = living / files[2000].relative_to(news.parent)
    text = changed.read_text("utf-8")
    changed.unlink()  # a hard link to the corpus: write a new file, never into the corpus's
    changed.write_text(text + "\n\n\n补充报道\n\n今天又有新的进展。\n", "utf-8")
    results["change_1"] = timed_update(living, work / "idx-living")

    from retrieval.store import open_index
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer.from_config(CONFIG_DIR)
    passages = open_index(work / "idx-whole").passages
    questions = [
        q.text for q in draw_queries(passages, lambda text: (tokenizer.words(text), []), 500, 1)
    ]
    say("queries: 1 segment")
    results["query_1"] = query_times(work / "idx-whole", questions)
    say("queries: 10 and 50 segments (the whole corpus, the last days added one a day)")
    from retrieval.segments import update_index

    segmented = archive_of(files[:-49], news.parent, work / "segmented")
    full_build(segmented, work / "idx-seg")
    for n, file in enumerate(files[-49:], start=2):
        os.link(file, segmented / file.relative_to(news.parent))
        update_index(segmented, work / "idx-seg", tokenizer, merge=False)
        if n == 10:
            results["query_10"] = query_times(work / "idx-seg", questions)
    results["query_50"] = query_times(work / "idx-seg", questions)
    say("the running bot picking up a page")
    results["pickup"] = pickup(living, work / "idx-living")
    print(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
