"""Shared fixtures: settings over the bundled seeds with an index in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.engine import open_searcher
from bot.settings import Settings, bundled_dir
from retrieval.search import Searcher

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
