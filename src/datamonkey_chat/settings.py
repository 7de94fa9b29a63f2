"""All configuration in one object, read from the environment (prefix DATAMONKEY_CHAT_) or .env."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

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

    # Messages and request bodies
    max_message_bytes: int = 32 * 1024
    max_body_bytes: int = Field(
        default=1024 * 1024,
        description="Request bodies other than messages and uploads (which have their own)",
    )
    read_cache_size: int = Field(
        default=4096,
        description="Conversations kept in memory for reads (0: off); on PostgreSQL, other "
        "server processes' writes reach it through LISTEN/NOTIFY",
    )
    read_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        description="Approximate memory the read cache may take (0: bounded by count only)",
    )

    # Rate limits (a public server with anonymous sessions): requests counted per window,
    # 429 with Retry-After past a limit; 0 turns one limit off, rate_limits=false all.
    rate_limits: bool = True
    rate_limit_window_seconds: float = 60.0
    rate_limit_new_sessions: int = Field(
        default=60, description="Sessions created per client address per window"
    )
    rate_limit_uploads: int = Field(default=60, description="Uploads per session per window")
    rate_limit_job_starts: int = Field(default=60, description="Job starts per session per window")
    rate_limit_sends: int = Field(default=60, description="Messages sent per session per window")
    redis_url: str | None = Field(
        default=None,
        description="Redis for rate-limit counters shared by server processes, e.g. "
        "redis://127.0.0.1:6379/0; unset or unreachable: counted in each process",
    )
    redis_key_prefix: str = "datamonkey_chat:rate"

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

    max_concurrent_sends: int | None = Field(
        default=None,
        description="Unstreamed sends handled at once per process (history, reply, storing; "
        "others wait their turn); default: 16 for the offline assistant, whose sends are CPU "
        "work that would otherwise delay every read, unbounded for a model behind the network",
    )

    @property
    def send_slots(self) -> int | None:
        """None: sends are not admitted in turns."""
        if self.max_concurrent_sends is not None:
            return max(1, self.max_concurrent_sends)
        return None if self.model else 16

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
    parse_workers: int = Field(
        default_factory=lambda: max(2, min(4, os.cpu_count() or 1)),
        description="Worker processes that parse uploads",
    )
    parse_time_limit_seconds: float = Field(
        default=60.0, description="A parse still running then is killed (422)"
    )
    parse_memory_limit_bytes: int = Field(
        default=2 * 1024**3, description="Address space of each parse worker (RLIMIT_AS)"
    )
    parse_per_client: int = Field(
        default=1, description="Uploads one client address may have in parsing at once (429)"
    )
    jobs_dir: Path | None = Field(
        default=None, description="HyPhy working directories; default: data_dir/jobs"
    )
    genetic_code: str = Field(
        default="Universal", description="HyPhy genetic code for stop-codon checks on upload"
    )
    job_poll_seconds: float = Field(
        default=1.0, description="How often the job runner looks for queued jobs"
    )
    job_heartbeat_seconds: float = Field(
        default=5.0,
        description="How often a runner marks its jobs alive; a job silent for six of these "
        "belonged to a process that died and is taken over by another",
    )

    # Where HyPhy runs: this machine, or a Slurm cluster (jobs_dir on storage every node sees)
    job_executor: Literal["local", "slurm"] = "local"
    slurm_partition: str | None = None
    slurm_cpus_per_job: int = Field(default=1, ge=1)
    slurm_time_limit: str | None = Field(
        default=None,
        description="sbatch --time (e.g. '2:00:00'); default: JOB_TIME_LIMIT_SECONDS rounded "
        "up to minutes",
    )
    slurm_extra_args: str = Field(
        default="", description="More sbatch arguments, split like a shell would (no shell runs)"
    )
    slurm_hyphy_binary: str | None = Field(
        default=None, description="HyPhy as the compute nodes see it; default: HYPHY_BINARY's"
    )
    slurm_poll_seconds: float = Field(default=2.0, description="How often Slurm jobs are polled")

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
