"""Index builds that fail on purpose, in a process of their own: killed by SIGKILL, or out of disk
space, at a chosen write. Run as `python -m tests.fakes.builder MODE ARCHIVE ROOT [N ...]`:

    count ARCHIVE ROOT        print how many writes under ROOT one build makes
    kill ARCHIVE ROOT [N...]  for each N, fork a builder that SIGKILLs itself at its N-th write,
                              then open the index and search it; without N, a spread of the
                              writes of one build (counted first): the first, the last and
                              some between
    full ARCHIVE ROOT [N...]  the same, the N-th write failing with ENOSPC instead
    cli-full ROOT N -- ARGS   run `archive-bot ARGS` with the N-th write under ROOT failing so
    build ARCHIVE ROOT        build once (two of these at a time: concurrent builders)
    race ARCHIVE ROOT         open the index at ROOT while a whole build replaces it: the build
                              runs when the opening reads its first .npy file
    kill-update ARCHIVE ROOT  like kill, for an update (a page added, one removed) of an index
    full-update ARCHIVE ROOT  ... and out of disk space; each try starts from the same index
    kill-merge ARCHIVE ROOT   like kill, for a merge of two segments into one
    full-merge ARCHIVE ROOT   ... and out of disk space

A "write" is any file opened for writing, folder made, file renamed or removed under ROOT, seen
through an audit hook (`sys.addaudithook`): that is where a build can be interrupted, whatever
the functions the index code writes with. Each line of output is one JSON object.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
WRITE_EVENTS = ("os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate")


class Trap:
    """Counts writes under a folder and kills the process, or fails the write, at the N-th."""

    def __init__(self, root: Path) -> None:
        self.root = os.fspath(root)
        self.count = 0
        self.kill_at: int | None = None
        self.fail_at: int | None = None

    def arm(self, *, kill_at: int | None = None, fail_at: int | None = None) -> None:
        """Start counting from zero; act at the given write."""
        self.count, self.kill_at, self.fail_at = 0, kill_at, fail_at

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self._is_write(event, args):
            return
        self.count += 1
        if self.count == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.count == self.fail_at:
            self.fail_at = None  # the clean-up after the failure must not fail too
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))

    def _is_write(self, event: str, args: tuple[Any, ...]) -> bool:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if mode else bool(flags & WRITE_FLAGS)
        elif event in WRITE_EVENTS:
            path, writing = args[0], True
        else:
            return False
        return writing and isinstance(path, str | bytes | os.PathLike) and self._under(path)

    def _under(self, path: str | bytes | os.PathLike[str]) -> bool:
        text = os.fsdecode(path)
        return text == self.root or text.startswith(self.root + os.sep)


def main(argv: list[str]) -> int:
    """Run one mode; see the module docstring."""
    mode = argv[0]
    if mode == "cli-full":
        return _cli_full(Path(argv[1]).resolve(), int(argv[2]), argv[argv.index("--") + 1 :])
    archive, root = Path(argv[1]).resolve(), Path(argv[2]).resolve()
    points = [int(n) for n in argv[3:]]
    trap = Trap(root)
    sys.addaudithook(trap)

    from retrieval.segments import build_index  # imported after the hook: no writes are missed
    from retrieval.tokenize import Tokenizer

    tokenizer = Tokenizer()
    if mode.endswith(("-update", "-merge")):
        return _updates(mode, archive, root, tokenizer, trap, points)
    if mode == "race":
        return _race(archive, root, tokenizer)
    if mode in ("count", "build"):
        trap.arm()
        stats = build_index(archive, root, tokenizer)
        _say(writes=trap.count, passages=stats.passages)
        return 0
    if not points:
        trap.arm()
        build_index(archive, root, tokenizer)
        points = spread(trap.count)
    for point in points:
        if mode == "kill":
            ended = _killed_build(trap, archive, root, tokenizer, point)
        else:
            trap.arm(fail_at=point)
            try:
                build_index(archive, root, tokenizer)
            except OSError as error:
                ended = {"error": str(error), "errno": error.errno}
            else:
                ended = {"error": None}
        _say(at=point, **ended, answers=_answers(root, tokenizer))
    return 0


def spread(writes: int) -> list[int]:
    """Every write of a small build, or the first three, the last two and some between."""
    if writes <= 12:
        return list(range(1, writes + 1))
    return sorted({1, 2, 3, *(writes * k // 6 for k in range(1, 6)), writes - 1, writes})


def _answers(root: Path, tokenizer: Any) -> bool | str:
    """Whether the index at `root` opens and answers the example question, or why not."""
    from retrieval.search import Searcher
    from retrieval.store import open_index

    try:
        result = Searcher(open_index(root), tokenizer).ask("溧阳暑托班有多少家", top_k=3)
    except Exception as error:  # reported to the test
        return repr(error)
    return result.answer is not None and "40多家" in result.answer.sentence


def _killed_build(trap: Trap, archive: Path, root: Path, tokenizer: Any, point: int) -> dict:
    """Build in a forked child that kills itself at write `point`; how the child ended."""
    from retrieval.segments import build_index

    pid = os.fork()
    if pid == 0:  # the child
        try:
            trap.arm(kill_at=point)
            build_index(archive, root, tokenizer)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.WEXITSTATUS(status)}


def _race(archive: Path, root: Path, tokenizer: Any) -> int:
    """Open the index while another build replaces it; whether the opening still worked."""
    from retrieval.search import Searcher
    from retrieval.segments import build_index
    from retrieval.store import open_index

    armed = [True]

    def build_now(event: str, args: tuple[Any, ...]) -> None:
        if armed[0] and event == "open" and os.fsdecode(args[0]).endswith(".npy"):
            armed[0] = False
            build_index(archive, root, tokenizer)

    sys.addaudithook(build_now)
    try:
        hits = Searcher(open_index(root), tokenizer).search("暑托班", top_k=1)
    except Exception as error:  # reported to the test
        _say(opened=False, error=repr(error), raced=not armed[0])
    else:
        _say(opened=True, hits=len(hits), raced=not armed[0])
    return 0


def _cli_full(root: Path, point: int, args: list[str]) -> int:
    """`archive-bot ARGS` with write `point` under `root` failing with ENOSPC."""
    trap = Trap(root)
    trap.arm(fail_at=point)
    sys.addaudithook(trap)
    from bot.cli import main as cli

    return cli(args)


def _updates(
    mode: str, seeds: Path, root: Path, tokenizer: Any, trap: Trap, points: list[int]
) -> int:
    """Updates or merges killed or out of space at each write, each from the same index."""
    import shutil

    from retrieval.segments import build_index, merge_segments, update_index
    from retrieval.store import open_index

    archive, pristine = root.parent / "live-archive", root.parent / "pristine"
    shutil.copytree(seeds, archive)
    pages = sorted(archive.glob("0*.txt"))
    build_index(archive, pristine, tokenizer)
    new_page = "科技新闻\n\n首颗量子卫星发射成功,溧阳暑托班也有报道。\n"
    if mode.endswith("-merge"):  # two segments to merge
        (archive / "new.txt").write_text(new_page, "utf-8")
        update_index(archive, pristine, tokenizer, merge=False)

    def state(folder: Path) -> tuple[int, int]:
        manifest = open_index(folder).manifest
        return manifest.passages, len(manifest.segments)

    before = state(pristine)
    if mode.endswith("-update"):  # what the update will do: one page added, one removed
        (archive / "new.txt").write_text(new_page, "utf-8")
        pages[-1].unlink()

    def operate() -> None:
        if mode.endswith("-merge"):
            merge_segments(root, max_segments=1)
        else:
            update_index(archive, root, tokenizer, merge=False)

    def reset() -> None:
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(pristine, root)

    reset()
    trap.arm()
    operate()
    after = state(root)
    for point in points or spread(trap.count):
        reset()
        if mode.startswith("kill"):
            pid = os.fork()
            if pid == 0:  # the child
                try:
                    trap.arm(kill_at=point)
                    operate()
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": 1}
        else:
            trap.arm(fail_at=point)
            try:
                operate()
            except OSError as error:
                ended = {"error": str(error), "errno": error.errno}
            else:
                ended = {"error": None}
        answers = _answers(root, tokenizer)
        _say(at=point, **ended, answers=answers, state=[before, after].index(state(root)))
    reset()
    operate()  # and the next try succeeds
    _say(final=state(root) == after, answers=_answers(root, tokenizer))
    return 0


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
