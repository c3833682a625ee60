"""Start-up of a fresh `archive-bot ask` on the seeds: wall time and peak RSS, hyperfine-like.

    python benchmarks/bench_start.py                       # this tree, 7 runs
    python benchmarks/bench_start.py --peer /tmp/before    # and another source tree, alternately

The seeds' index is built once into a private folder first (not timed), then each tree answers
`archive-bot ask "溧阳暑托班有多少家"` in `--runs` fresh processes (`python -m bot.cli`, one
untimed warm-up each, so the OS cache is warm, and numba's cache for a tree from before the
kernels were C). Wall time is from spawn to exit; peak RSS is the child's `ru_maxrss`. With
`--peer`, the two trees run alternately, so the shared machine's load falls on both alike:
compare the ratio. The section "## Start-up" of
RESULTS.md is replaced with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
QUESTION = "溧阳暑托班有多少家"
SECTION = "## Start-up"


Sample = tuple[float, float, float]  # wall s, CPU s (user + system), peak RSS MB


def run_once(tree: Path, env: dict[str, str]) -> Sample:
    """Wall seconds, CPU seconds and peak RSS (MB) of one fresh `ask` from a source tree.

    CPU time is what the process itself spent: on a shared machine it moves far less with the
    load than wall time does, which also holds the time spent waiting for a core.
    """
    command = [sys.executable, "-m", "bot.cli", "ask", QUESTION]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=tree, env={**env, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"ask failed in {tree} (exit {process.returncode})")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024  # kilobytes on Linux


def measure(trees: dict[str, Path], runs: int) -> dict[str, list[Sample]]:
    """Each tree's (wall, CPU, RSS) over `runs` fresh processes, trees taking turns.

    Each tree gets its own index folder (their formats may differ), built first and untimed,
    and one untimed warm-up question (page cache, .pyc files, an older tree's numba cache).
    """
    samples: dict[str, list[Sample]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bench-start-") as root:
        envs = {}
        for i, (name, tree) in enumerate(trees.items()):
            env = {**os.environ, "ARCHIVE_BOT_INDEX_DIR": f"{root}/{i}"}
            env.pop("ARCHIVE_BOT_ARCHIVE_DIR", None)  # the seeds
            # The warm-up writes the trees' .pyc files, as an installed package has them; with
            # this set, every run would compile the project's modules again (≈ 50 ms).
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            subprocess.run(
                [sys.executable, "-m", "bot.cli", "index"], cwd=tree,
                env={**env, "PYTHONPATH": str(tree)}, check=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            run_once(tree, env)
            envs[name] = env
        for _ in range(runs):
            for name, tree in trees.items():
                samples[name].append(run_once(tree, envs[name]))
    return samples


def report(samples: dict[str, list[Sample]], runs: int, command: str) -> str:
    """The RESULTS.md section."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION,
        "",
        f'Measured {now} with `{command}`: a fresh `archive-bot ask "{QUESTION}"` on the '
        f"seeds (index already built), {runs} runs per tree after one warm-up, trees taking "
        "turns on the shared 2-core machine. Target: ≤ 0.5 s wall, ≤ 150 MB RSS.",
        "",
        "| tree | wall median | wall min | wall max | CPU median | peak RSS median |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    medians, cpus = {}, {}
    for name, values in samples.items():
        walls = [w for w, _, _ in values]
        medians[name] = statistics.median(walls)
        cpus[name] = statistics.median(c for _, c, _ in values)
        rss = statistics.median(r for _, _, r in values)
        lines.append(
            f"| {name} | {medians[name]:.3f} s | {min(walls):.3f} s | {max(walls):.3f} s "
            f"| {cpus[name]:.3f} s | {rss:.0f} MB |"
        )
    if len(medians) == 2:
        (this, peer), (this_cpu, peer_cpu) = medians.values(), cpus.values()
        lines += [
            "",
            f"Wall median, this tree / peer: {this / peer:.2f}×; CPU median: "
            f"{this_cpu / peer_cpu:.2f}×.",
        ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the start-up section of RESULTS.md, keeping the rest."""
    text = path.read_text("utf-8") if path.exists() else ""
    if SECTION in text:
        head, tail = text.split(SECTION, 1)
        rest = tail.split("\n## ", 1)
        text = head + section + ("\n## " + rest[1] if len(rest) == 2 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, "utf-8")


def main(argv: list[str] | None = None) -> int:
    """Build the seeds' index, time fresh `ask` processes, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--peer", type=Path, help="another source tree to time alternately")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    trees = {"this tree": TREE} | ({f"peer ({args.peer})": args.peer} if args.peer else {})
    samples = measure(trees, args.runs)
    given = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/bench_start.py " + " ".join(given)
    section = report(samples, args.runs, command.strip())
    print(section)
    write_section(args.results, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
