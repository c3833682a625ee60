"""deploy/archive-bot.service is a unit systemd accepts, running the bot as README says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fakes.harness import command

UNIT = REPO / "deploy" / "archive-bot.service"
EXEC_START = "ExecStart=/opt/archive-bot/.venv/bin/archive-bot telegram"


def settings_of(text: str) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, values in order (keys repeat: Environment=)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_runs_the_bot_as_an_unprivileged_user_and_stops_on_sigterm() -> None:
    unit = settings_of(UNIT.read_text("utf-8"))
    assert unit["User"] == ["archive-bot"] and unit["EnvironmentFile"] == ["/etc/archive-bot/env"]
    assert unit["Restart"] == ["on-failure"] and unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["TimeoutStopSec"][0]) >= 10
    variables = {value.split("=", 1)[0] for value in unit["Environment"]}
    assert {"ARCHIVE_BOT_ARCHIVE_DIR", "ARCHIVE_BOT_INDEX_DIR"} <= variables
    assert "ARCHIVE_BOT_TELEGRAM_TOKEN" not in variables  # the token lives in the env file only
    assert EXEC_START in UNIT.read_text("utf-8")


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """The unit as shipped, with ExecStart pointed at this virtualenv's real console script
    (verify checks that the binary exists); a machine without systemd-analyze fails here."""
    analyze = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if analyze is None:
        pytest.fail("systemd-analyze is missing: install systemd to check deploy/*.service")
    [script] = command()[:1]
    text = UNIT.read_text("utf-8").replace(EXEC_START, f"ExecStart={script} telegram")
    copy = tmp_path / UNIT.name
    copy.write_text(text, "utf-8")
    done = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "archive-bot.service" not in done.stderr, done.stderr  # no warning about the unit
