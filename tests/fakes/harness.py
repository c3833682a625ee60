"""Run the real bot against the fake Bot API: in a thread of the test process, or as the
`archive-bot telegram` console script in a subprocess.

    with FakeBotApi() as api, running(build_application(settings, searcher)):
        api.push_message("溧阳暑托班有多少家")

    process = bot_process(api, settings, tmp_path)  # the console script, polling `api`
    ...
    out, err = stop(process)  # SIGTERM, then the exit and its output
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from telegram.ext import Application

from bot.settings import Settings
from tests.fakes.bot_api import Call, FakeBotApi

REPO = Path(__file__).resolve().parent.parent.parent


@contextmanager
def running(
    application: Application, *, timeout: float = 15.0, poll_timeout: int = 5
) -> Iterator[None]:
    """Run an application (post_init, polling) in a thread with its own event loop."""
    ready = threading.Event()
    failure: list[BaseException] = []
    loop: list[asyncio.AbstractEventLoop] = []
    stop_event = asyncio.Event()

    async def main() -> None:
        loop.append(asyncio.get_running_loop())
        async with application:
            if application.post_init is not None:
                await application.post_init(application)
            updater = application.updater
            if updater is None:
                raise RuntimeError("the application has no updater")
            await updater.start_polling(
                poll_interval=0.0, timeout=poll_timeout, error_callback=_polling_error(application)
            )
            await application.start()
            ready.set()
            await stop_event.wait()
            await updater.stop()
            await application.stop()

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as error:  # reported to the test below
            failure.append(error)
            ready.set()

    thread = threading.Thread(target=target, name="bot-under-test", daemon=True)
    thread.start()
    if not ready.wait(timeout) or failure:
        raise RuntimeError(f"the bot did not start: {failure}")
    try:
        yield
    finally:
        loop[0].call_soon_threadsafe(stop_event.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the bot did not stop within {timeout} s")
        if failure:
            raise failure[0]


def _polling_error(application: Application):  # type: ignore[no-untyped-def]
    """What `run_polling` passes: polling errors go to the application's error handlers."""

    def callback(error: Exception) -> None:
        application.create_task(application.process_error(error=error, update=None))

    return callback


def command() -> list[str]:
    """The `archive-bot` console script of this virtualenv (or the module as a fallback)."""
    script = shutil.which("archive-bot", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "bot.cli"]


def bot_process(
    api: FakeBotApi, settings: Settings, cwd: Path, *args: str, verbose: bool = False, **env: str
) -> subprocess.Popen[str]:
    """`archive-bot [-v] telegram ARGS` polling `api`, over the archive and index of `settings`.

    The environment holds no other ARCHIVE_BOT_ variable; HOME and the cache folder point into
    `cwd`, so every file the process writes outside the index folder lands there.
    """
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith("ARCHIVE_BOT_")
    }
    environ.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        HOME=str(cwd),
        XDG_CACHE_HOME=str(cwd / ".cache"),
        ARCHIVE_BOT_TELEGRAM_TOKEN=api.token,
        ARCHIVE_BOT_TELEGRAM_BASE_URL=api.base_url,
        ARCHIVE_BOT_ARCHIVE_DIR=str(settings.archive_dir),
        ARCHIVE_BOT_INDEX_DIR=str(settings.resolved_index_dir),
    )
    environ.update(env)
    return subprocess.Popen(
        [*command(), *(["-v"] if verbose else []), "telegram", *args],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )


def wait_started(
    api: FakeBotApi, process: subprocess.Popen[str], *, timeout: float = 60.0
) -> Call:
    """Wait for the process's first getUpdates; fail at once with its stderr if it exited.

    Call it right after starting the process: getUpdates calls made before count as another
    bot's.
    """
    count = len(api.calls("getUpdates")) + 1
    return wait_call(api, process, "getUpdates", count=count, timeout=timeout)


def wait_call(
    api: FakeBotApi,
    process: subprocess.Popen[str],
    method: str,
    *,
    count: int = 1,
    timeout: float = 60.0,
) -> Call:
    """Like `api.wait_for`, but fail at once with the bot's stderr if the bot exited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return api.wait_for(method, count=count, timeout=0.25)
        except TimeoutError:
            if process.poll() is not None:
                err = process.communicate()[1]
                raise AssertionError(f"the bot exited early:\n{err}") from None
            if time.monotonic() > deadline:
                raise


def stop(process: subprocess.Popen[str], *, timeout: float = 20.0) -> tuple[str, str]:
    """SIGTERM the bot and return its output; fail if it does not exit within `timeout`."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        err = process.communicate()[1]
        raise AssertionError(f"no exit within {timeout} s of SIGTERM:\n{err}") from None
