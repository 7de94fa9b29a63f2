"""ORM tables. Times are Unix milliseconds (the wire format), ids are opaque strings."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    """A browser or API client session: the JWT's `sub` is this row's user id."""

    __tablename__ = "sessions"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)


class ConversationRow(Base):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated_id", "user_id", "updated_ms", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    # The newest message's seq: the next turn writes last_seq + 1 and + 2 without a scan.
    last_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class MessageRow(Base):
    """One message; `seq` orders a conversation (timestamps can tie)."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_messages_conv_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    # Assistant messages only: tool calls/results (JSON list) and the model's own record of
    # the turn (JSON), kept so later turns can show the model its earlier tool use.
    tool_events: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_messages: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the record costs in the context budget (assistant/history.py), measured when
    # written, so a send never parses a turn again to measure it; None on older rows.
    model_chars: Mapped[int | None] = mapped_column(Integer, nullable=True)


# ---------------------------------------------------------------- analyses


class DatasetRow(Base):
    """An uploaded alignment or tree, validated before it was stored."""

    __tablename__ = "datasets"
    __table_args__ = (Index("ix_datasets_user_created", "user_id", "created_ms"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # alignment | tree
    meta_type: Mapped[str | None] = mapped_column(Text, nullable=True)  # the uploader's `type`
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    data_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sequences: Mapped[int] = mapped_column(Integer)
    sites: Mapped[int] = mapped_column(Integer)
    codons: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    report: Mapped[str] = mapped_column(Text)  # ValidationReport JSON
    created_ms: Mapped[int] = mapped_column(BigInteger)


class JobRow(Base):
    """A HyPhy run; `runner_id` + `heartbeat_ms` tell a live runner's jobs from a dead one's."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_user_created", "user_id", "created_ms"),
        Index("ix_jobs_status_created", "status", "created_ms"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(32))  # catalog id
    # None: a method that reads only a tree (Slatkin-Maddison) ran on the tree alone
    alignment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tree_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    options: Mapped[str] = mapped_column(Text)  # JSON
    status: Mapped[str] = mapped_column(String(16))  # queued | running | completed | error
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list of strings
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # the HyPhy JSON
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runner_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The executor's id for the run (Slurm's job id): a restarted server follows that run
    # instead of starting the job again.
    slurm_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    started_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class VisualizationRow(Base):
    """A Vega-Lite chart of a job's results (upstream's Visualization): one a client stored,
    or one of the job's own plots saved when it completed. spec, config and metadata are
    JSON objects as text."""

    __tablename__ = "visualizations"
    __table_args__ = (Index("ix_visualizations_user_job", "user_id", "job_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(64))
    dataset_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    spec: Mapped[str] = mapped_column(Text)
    config: Mapped[str] = mapped_column(Text)
    # `metadata` is the declarative base's own attribute; the column keeps upstream's name.
    meta: Mapped[str] = mapped_column("metadata", Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
