"""Settings for every front end, loaded once at the entry point (pydantic-settings).

Sources, highest first: constructor arguments, `ARCHIVE_BOT_*` environment variables, a `.env`
file in the working directory, the settings file (`ARCHIVE_BOT_CONFIG_FILE`, else
`config/settings.toml` next to the bundled archive when present), then the defaults below.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "ARCHIVE_BOT_"
DEFAULT_TELEGRAM_BASE_URL = "https://api.telegram.org/bot"


def bundled_dir(name: str) -> Path:
    """Folder of a data package shipped with the project: "seeds" or "config"."""
    spec = importlib.util.find_spec(f"archive_bot_{name}")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    # Running from a source tree that was never installed.
    return Path(__file__).resolve().parent.parent / name


def default_index_dir(archive_dir: Path) -> Path:
    """Per-user cache folder for an archive: one folder per archive location."""
    key = hashlib.sha256(str(archive_dir.resolve()).encode()).hexdigest()[:16]
    return Path(user_cache_dir("archive-bot")) / "indexes" / key


class Settings(BaseSettings):
    """Everything a user can configure; see README's settings table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    archive_dir: Path = Field(default_factory=lambda: bundled_dir("seeds"))
    index_dir: Path | None = None
    top_k: int = Field(default=3, ge=1, le=50)
    config_dir: Path = Field(default_factory=lambda: bundled_dir("config"))

    telegram_token: SecretStr | None = None
    telegram_base_url: str = DEFAULT_TELEGRAM_BASE_URL
    allowed_chat_ids: list[int] = Field(default_factory=list)
    webhook_secret: SecretStr | None = None
    chat_rate_limit: int = Field(default=20, ge=0, description="questions per chat per minute")
    log_questions: bool = False
    telegram_timeout: float = Field(
        default=10.0, gt=0, le=300, description="seconds to wait for a Bot API answer"
    )

    refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="how often the bot and REPL look for archive changes; 0: never",
    )

    @field_validator("archive_dir", "config_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_index_dir(self) -> Path:
        """The index folder: the configured one, else a per-user cache folder."""
        if self.index_dir is not None:
            return self.index_dir.expanduser()
        return default_index_dir(self.archive_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Add the optional TOML settings file below the environment and `.env`."""
        sources: list[Any] = [init_settings, env_settings, dotenv_settings]
        toml_file = _settings_file()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        sources.append(file_secret_settings)
        return tuple(sources)


def _settings_file() -> Path | None:
    # The entry point is the one place the environment is read; this is part of loading it.
    named = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
    if named:
        return Path(named).expanduser()
    candidate = bundled_dir("config") / "settings.toml"
    return candidate if candidate.is_file() else None
