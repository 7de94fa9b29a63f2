"""ORM tables. Times are Unix milliseconds (the wire format), ids are opaque strings."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_ms"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


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
