"""Shared fixtures: settings over the bundled seeds with an index in a temporary folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.engine import open_searcher
from bot.settings import Settings, bundled_dir
from bot.telegram import build_application
from retrieval.search import Searcher
from tests.fakes.bot_api import FakeBotApi
from tests.fakes.harness import running

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SEEDS = bundled_dir("seeds")


@pytest.fixture(scope="session")
def seed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the bundled seeds, index in a session-wide temporary folder."""
    return Settings(archive_dir=SEEDS, index_dir=tmp_path_factory.mktemp("seed-index"))


@pytest.fixture(scope="session")
def seed_searcher(seed_settings: Settings) -> Searcher:
    """A Searcher over the seeds (index built once per test session)."""
    return open_searcher(seed_settings)


# The bot against the fake Bot API (tests/fakes), for the hardening tests ---------------------


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """A fresh fake Bot API server."""
    with FakeBotApi() as server:
        yield server


@pytest.fixture
def start_bot(
    api: FakeBotApi, seed_settings: Settings, seed_searcher: Searcher
) -> Iterator[Callable[..., Settings]]:
    """Start the real bot (in a thread) against `api`; keyword arguments change its settings."""
    with ExitStack() as stack:

        def start(searcher: Any = None, poll_timeout: int = 5, **changes: Any) -> Settings:
            settings = seed_settings.model_copy(
                update={
                    "telegram_token": SecretStr(api.token),
                    "telegram_base_url": api.base_url,
                    "allowed_chat_ids": [],
                    "chat_rate_limit": 20,
                    "log_questions": False,
                    **changes,
                }
            )
            application = build_application(settings, searcher or seed_searcher)
            stack.enter_context(running(application, poll_timeout=poll_timeout))
            return settings

        yield start
