"""Queries the domain needs, on an AsyncSession. Rows in, plain rows out; no HTTP here."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from datamonkey_chat.storage.models import ConversationRow, MessageRow, SessionRow


async def add_session(db: AsyncSession, user_id: str, now_ms: int) -> None:
    db.add(SessionRow(user_id=user_id, created_ms=now_ms, last_seen_ms=now_ms))


async def get_session(db: AsyncSession, user_id: str) -> SessionRow | None:
    return await db.get(SessionRow, user_id)


async def touch_session(db: AsyncSession, user_id: str, now_ms: int) -> None:
    await db.execute(
        update(SessionRow).where(SessionRow.user_id == user_id).values(last_seen_ms=now_ms)
    )


async def add_conversation(db: AsyncSession, row: ConversationRow) -> None:
    db.add(row)


async def get_conversation(db: AsyncSession, conversation_id: str) -> ConversationRow | None:
    return await db.get(ConversationRow, conversation_id)


async def list_conversations(db: AsyncSession, user_id: str) -> list[ConversationRow]:
    query = (
        select(ConversationRow)
        .where(ConversationRow.user_id == user_id)
        .order_by(ConversationRow.updated_ms.desc(), ConversationRow.id)
    )
    return list((await db.scalars(query)).all())


async def list_messages(db: AsyncSession, conversation_id: str) -> list[MessageRow]:
    query = (
        select(MessageRow)
        .where(MessageRow.conversation_id == conversation_id)
        .order_by(MessageRow.seq)
    )
    return list((await db.scalars(query)).all())


async def next_message_seq(db: AsyncSession, conversation_id: str) -> int:
    query = select(func.coalesce(func.max(MessageRow.seq), 0)).where(
        MessageRow.conversation_id == conversation_id
    )
    return int((await db.scalar(query)) or 0) + 1


async def add_messages(db: AsyncSession, rows: list[MessageRow]) -> None:
    db.add_all(rows)


async def set_conversation_updated(db: AsyncSession, conversation_id: str, now_ms: int) -> int:
    result = await db.execute(
        update(ConversationRow)
        .where(ConversationRow.id == conversation_id)
        .values(updated_ms=now_ms)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def set_title(
    db: AsyncSession, conversation_id: str, title: str, only_if_empty: bool = False
) -> int:
    query = update(ConversationRow).where(ConversationRow.id == conversation_id)
    if only_if_empty:
        query = query.where(ConversationRow.title.is_(None))
    result = await db.execute(query.values(title=title))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_conversation(db: AsyncSession, conversation_id: str) -> None:
    # Explicit message delete: SQLite only cascades with foreign_keys on, so do not rely on it.
    await db.execute(delete(MessageRow).where(MessageRow.conversation_id == conversation_id))
    await db.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))
