"""Load: 50 group chats send 500 questions in bursts to the `archive-bot telegram` process;
every question gets exactly one answer. Slow: `.ci/run` runs it with fewer questions
(ARCHIVE_BOT_LOAD_QUESTIONS); `benchmarks/load.py` records the full run's figures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.conftest import SEEDS
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.harness import bot_process, stop, wait_started
from tests.fakes.load import archive_questions, burst_load, rss_mb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Deprecated since version v22.2"),  # PTB's limiter
]

QUESTIONS = int(os.environ.get("ARCHIVE_BOT_LOAD_QUESTIONS", "500"))
CHATS = 50


def test_bursts_from_many_chats_get_one_answer_each(
    api: FakeBotApi, seed_settings: Settings, tmp_path: Path
) -> None:
    process = bot_process(api, seed_settings, tmp_path)
    try:
        wait_started(api, process)
        report = burst_load(
            api,
            archive_questions(SEEDS, QUESTIONS),
            chats=min(CHATS, QUESTIONS),
            bursts=10,
            pause=0.2,
            memory=lambda: rss_mb(process.pid),
        )
    finally:
        _, err = stop(process)
    assert process.returncode == 0 and "Traceback" not in err, err
    assert report.answered == report.questions == QUESTIONS, report
    assert report.repeated == 0 and report.empty == 0, report
    assert report.rss_mb is not None and report.rss_mb < 400, report  # no leak per question
