"""Speed and memory of archive-bot against rank-bm25 and bm25s on the real news corpus.

    python benchmarks/bench.py                    # 10k, 100k and 1M passages (tens of minutes)
    python benchmarks/bench.py --max-size 100k    # quick check: stop at 100k
    python benchmarks/bench.py --sizes 10k        # any list of sizes
    python benchmarks/bench.py --generate-only --sizes 1M   # only make (and count) an archive

For each size: generate the archive (bench_corpus), build archive-bot's index in a child
process (timed, peak memory of its process tree sampled), re-tokenize its passages for the
peers, build each peer in its own child, then probe every engine in a fresh child that opens
the saved index and answers the same questions (open time, RSS, latencies, top-10). Results go
to benchmarks/work/runs/<size>/results.json and benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engines import ENGINES, PEERS, RunPaths, load_queries  # noqa: E402
from bench_report import compare_top, disk_bytes, machine_info, render  # noqa: E402

WORK = HERE / "work"
CORPUS_TARBALL = HERE.parent.parent / "shared" / "bench" / "news-corpus.tar.gz"
DEFAULT_SIZES = "10k,100k,1M"
SEED = 20240601
PROBES = ("archive-bot", "archive-bot-fused", "archive-bot-fields", "archive-bot-ask", *PEERS)
STARTED = time.perf_counter()
LOAD_SECTION = "## Telegram load"  # written by benchmarks/load.py, kept by this script


def say(message: str) -> None:
    """Progress on stderr, with the time since start."""
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """ "10k" → 10_000, "1M" → 1_000_000, "2500" → 2500."""
    text = text.strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def size_label(size: int) -> str:
    """1_000_000 → "1M", 100_000 → "100k"."""
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (the --step ones are for the child processes)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="e.g. 10k,100k,1M")
    parser.add_argument("--max-size", help="skip sizes above this, e.g. 100k")
    parser.add_argument("--queries", type=int, default=1000, help="timed questions per engine")
    parser.add_argument(
        "--slow-queries", type=int, help="questions for rank-bm25 (default 1000, 50 above 200k)"
    )
    parser.add_argument("--check", type=int, default=50, help="questions in the top-10 check")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--fresh", action="store_true", help="regenerate archives")
    parser.add_argument("--generate-only", action="store_true", help="only make the archives")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite RESULTS.md from saved results"
    )
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--step", choices=("build", "tokens", "probe"), help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--archive", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- child processes


def run_step(args: argparse.Namespace) -> int:
    """In a child: run one step and write its JSON result to --out."""
    paths = RunPaths(args.archive, args.run)
    if args.step == "tokens":
        from bench_engines import prepare_tokens

        result = prepare_tokens(paths, args.queries + 1, args.seed)
    elif args.step == "build":
        build = ENGINES[args.engine].build
        if build is None:
            raise SystemExit(f"{args.engine} has no build step")
        result = build(paths)
    else:
        result = probe(args.engine, paths, args.queries, args.check)
    args.out.write_text(json.dumps(result), "utf-8")
    return 0


def rss_mb() -> float:
    """This process's resident memory in MB."""
    return psutil.Process().memory_info().rss / 1e6


def resident_by_mapping(top: int = 12) -> dict[str, float]:
    """Where this process's resident memory is (MB, from /proc/self/smaps): per mapped file,
    "[heap]", "[anon]" for anonymous mappings; the largest `top`, the rest as "other"."""
    sizes: dict[str, int] = {}
    name = "[anon]"
    with contextlib.suppress(OSError), open("/proc/self/smaps", encoding="utf-8") as smaps:
        for line in smaps:
            head, _, rest = line.partition(" ")
            if "-" in head and not head.endswith(":"):  # a mapping's first line
                parts = rest.split(maxsplit=4)
                name = Path(parts[4].strip()).name if len(parts) == 5 else "[anon]"
                name = name if name else "[anon]"
            elif head == "Rss:":
                sizes[name] = sizes.get(name, 0) + int(rest.split()[0])
    ranked = sorted(sizes.items(), key=lambda item: -item[1])
    shown = {key: kb / 1e3 for key, kb in ranked[:top]}
    return {**shown, "other": sum(kb for _, kb in ranked[top:]) / 1e3}


def read_into_os_cache(path: Path) -> tuple[int, float]:
    """Read a file, or every file under a folder, once and throw the bytes away: its pages are
    then in the OS cache (not in this process's memory). Bytes read and seconds taken."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    buffer, total, started = bytearray(1 << 20), 0, time.perf_counter()
    for file in files:
        with contextlib.suppress(OSError), open(file, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                total += count
    return total, time.perf_counter() - started


def probe(name: str, paths: RunPaths, n_queries: int, n_check: int) -> dict[str, Any]:
    """Open an engine's saved index and answer the questions; the first one is a warm-up.

    Every engine's saved index is first read once into the OS cache, so that each is timed as
    a server that keeps its index in memory: on these machines the OS cache loses files between
    runs (the kernel's DAMON pages out memory left cold), and archive-bot's whole path, the one
    probe that reads passages' texts, then waited on the disk for them (RESULTS.md, "Issue 15,
    ninth pass"). The page cache is not the process's: its resident memory is measured the
    same."""
    engine = ENGINES[name]
    warmup, *queries = load_queries(paths.queries)
    cached_bytes, cached_s = read_into_os_cache(paths.saved(name))
    engine.import_modules()
    rss_base = rss_mb()
    started = time.perf_counter()
    opened = engine.open(paths)
    open_s = time.perf_counter() - started
    rss_open = rss_mb()
    started = time.perf_counter()
    opened.top(opened.prepare(warmup), 10)
    first_ms = (time.perf_counter() - started) * 1e3
    latencies, tops = [], []
    for i, query in enumerate([opened.prepare(q) for q in queries[:n_queries]]):
        started = time.perf_counter()
        ids, scores = opened.top(query, 10)
        latencies.append((time.perf_counter() - started) * 1e3)
        if i < n_check:
            tops.append([ids.tolist(), scores.tolist()])
    ms = np.array(latencies)
    return {
        "engine": name, "open_s": open_s, "rss_base_mb": rss_base, "rss_open_mb": rss_open,
        "rss_after_mb": rss_mb(), "queries": len(ms), "first_ms": first_ms,
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()), "notes": opened.notes, "top": tops,
        "os_cache_mb": cached_bytes / 1e6, "os_cache_s": cached_s,
        "resident_mb": resident_by_mapping(),
    }  # fmt: skip


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants."""
    total = 0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += each.memory_info().rss
    return total


def _sample_peak(process: psutil.Process, peak: list[int], done: threading.Event) -> None:
    while not done.is_set():
        try:
            peak[0] = max(peak[0], tree_rss(process))
        except psutil.Error:
            return
        done.wait(0.05)


def child(step: str, engine: str, paths: RunPaths, args: argparse.Namespace, **extra: Any) -> dict:
    """Run one step in a fresh interpreter; adds its wall time, CPU time and peak tree RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", dir=WORK) as out:
        command = [
            sys.executable, __file__, "--step", step, "--engine", engine,
            "--archive", str(paths.archive), "--run", str(paths.run), "--out", out.name,
            "--seed", str(args.seed), "--check", str(args.check),
            "--queries", str(extra.get("queries", args.queries)),
        ]  # fmt: skip
        cpu_before = _children_cpu()
        started = time.perf_counter()
        process = subprocess.Popen(command)
        peak, done = [0], threading.Event()
        sampler = threading.Thread(
            target=_sample_peak, args=(psutil.Process(process.pid), peak, done)
        )
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
        if code != 0:
            raise RuntimeError(f"step {step} {engine} failed with exit code {code}")
        result = json.loads(Path(out.name).read_text("utf-8"))
    wall = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    return {**result, "peak_rss_mb": peak[0] / 1e6, "child_wall_s": wall, "child_cpu_s": cpu}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- one size


def corpus_dir() -> Path:
    """The unpacked news corpus, unpacked on first use."""
    folder = WORK / "news"
    if not folder.is_dir():
        say(f"unpacking {CORPUS_TARBALL}")
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(CORPUS_TARBALL), "-C", str(WORK)], check=True)
    return folder


def bench_size(size: int, args: argparse.Namespace, machine: dict[str, Any]) -> dict[str, Any]:
    """Generate, build, tokenize, probe and compare at one size."""
    from bench_corpus import ensure_archive  # not in the probes: keep their RSS to the engine

    label = size_label(size)
    paths = RunPaths(WORK / "archives" / label, WORK / "runs" / label)
    archive = ensure_archive(corpus_dir(), paths.archive, size, args.seed, say, fresh=args.fresh)
    paths.run.mkdir(parents=True, exist_ok=True)
    builds = {"archive-bot": _build("archive-bot", paths, args)}
    say(f"{label}: tokenizing passages for the peers, drawing questions")
    tokens = child("tokens", "-", paths, args)
    say(f"{label}: {tokens['tokens']:,} tokens in {tokens['seconds']:.1f} s")
    builds |= {name: _build(name, paths, args) for name in PEERS}
    probes = {name: _probe(name, paths, args, size) for name in PROBES}
    result = {
        "label": label, "size": size, "machine": machine, "archive": asdict(archive),
        "tokens": tokens, "builds": builds, "probes": probes,
        "disk": {name: disk_bytes(paths.saved(name)) for name in ("archive-bot", *PEERS)},
        "check": compare_top(probes["archive-bot"]["top"], probes["rank-bm25"]["top"]),
    }  # fmt: skip
    (paths.run / "results.json").write_text(json.dumps(result, indent=1), "utf-8")
    return result


def _build(name: str, paths: RunPaths, args: argparse.Namespace) -> dict[str, Any]:
    say(f"{paths.run.name}: building {name}")
    result = child("build", name, paths, args)
    say(
        f"{paths.run.name}: {name} built in {result['seconds']:.1f} s, "
        f"peak {result['peak_rss_mb']:,.0f} MB"
    )
    return result


def _probe(name: str, paths: RunPaths, args: argparse.Namespace, size: int) -> dict[str, Any]:
    queries = args.queries
    if name == "rank-bm25":
        queries = args.slow_queries or (args.queries if size <= 200_000 else 50)
        queries = max(queries, min(args.check, args.queries))
    say(f"{paths.run.name}: probing {name} ({queries} questions)")
    result = child("probe", name, paths, args, queries=queries)
    say(
        f"{paths.run.name}: {name}: open {result['open_s'] * 1e3:.0f} ms, "
        f"p50 {result['p50_ms']:.2f} ms, p95 {result['p95_ms']:.2f} ms, "
        f"RSS {result['rss_after_mb']:.0f} MB"
    )
    return result


# ---------------------------------------------------------------- main


def selected_sizes(args: argparse.Namespace) -> list[int]:
    """The sizes to run, smallest first, none above --max-size."""
    sizes = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    if args.max_size:
        sizes = [s for s in sizes if s <= parse_size(args.max_size)]
    return sizes


def saved_results(size: int) -> dict[str, Any]:
    """The results.json a previous run wrote for a size."""
    path = WORK / "runs" / size_label(size) / "results.json"
    return json.loads(path.read_text("utf-8"))


def generate_only(sizes: list[int], args: argparse.Namespace) -> int:
    """Make the archives and print their manifests."""
    from bench_corpus import ensure_archive

    for size in sizes:
        folder = WORK / "archives" / size_label(size)
        info = ensure_archive(corpus_dir(), folder, size, args.seed, say, fresh=args.fresh)
        print(json.dumps(asdict(info)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --step, one step of it in a child process)."""
    args = parse_args(argv)
    if args.step:
        return run_step(args)
    sizes = selected_sizes(args)
    if args.generate_only:
        return generate_only(sizes, args)
    command = "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.report_only:
        results = [saved_results(size) for size in sizes]
        machine = results[-1].get("machine") or {**machine_info(), "command": command.strip()}
    else:
        machine = {**machine_info(), "command": command.strip()}
        results = [bench_size(size, args, machine) for size in sizes]
    text = render(results, machine, machine["command"])
    # benchmarks/load.py writes its own section: keep it.
    old = args.results.read_text("utf-8") if args.results.exists() else ""
    if LOAD_SECTION in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(LOAD_SECTION) :]
    args.results.write_text(text, "utf-8")
    say(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
