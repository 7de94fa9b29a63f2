"""All configuration in one object, read from the environment (prefix DATAMONKEY_CHAT_) or .env."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DATAMONKEY_CHAT_", env_file=".env", extra="ignore"
    )

    # Storage
    data_dir: Path = Path("./data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default: SQLite file in data_dir"
    )

    # Sessions
    jwt_secret: str | None = Field(
        default=None, description="HS256 signing secret; default: generated into data_dir"
    )
    token_ttl_days: float = 30.0

    # Messages
    max_message_bytes: int = 32 * 1024
    read_cache_size: int = Field(
        default=4096,
        description="Conversations kept in memory for reads (0: off); on PostgreSQL, other "
        "server processes' writes reach it through LISTEN/NOTIFY",
    )

    # Assistant
    model: str | None = Field(
        default=None, description="Pydantic AI 'provider:model'; default: offline assistant"
    )
    openai_base_url: str | None = None
    temperature: float | None = None
    max_output_tokens: int | None = None
    reply_timeout_seconds: float = 120.0
    context_budget_chars: int = 48_000
    context_max_turns: int = Field(
        default=200, description="At most this many past turns are sent to the model"
    )
    max_concurrent_replies: int | None = Field(
        default=None,
        description="Unstreamed assistant runs at once (others wait their turn); default: 4 "
        "for the offline assistant, whose runs are CPU work, 256 for a model behind the network",
    )

    @property
    def reply_slots(self) -> int:
        if self.max_concurrent_replies is not None:
            return max(1, self.max_concurrent_replies)
        return 256 if self.model else 4

    # Analyses
    hyphy_binary: str | None = Field(
        default=None, description="HyPhy executable; default: best of /usr/lib/hyphy/bin"
    )
    max_concurrent_jobs: int = Field(default_factory=lambda: os.cpu_count() or 1)
    job_time_limit_seconds: float = 3600.0
    max_upload_bytes: int = 20 * 1024 * 1024
    jobs_dir: Path | None = Field(
        default=None, description="HyPhy working directories; default: data_dir/jobs"
    )
    genetic_code: str = Field(
        default="Universal", description="HyPhy genetic code for stop-codon checks on upload"
    )
    job_poll_seconds: float = Field(
        default=1.0, description="How often the job runner looks for queued jobs"
    )

    # Logging
    log_level: str = "INFO"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'datamonkey-chat.sqlite3').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
