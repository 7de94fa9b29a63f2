"""Queries the domain needs, on an AsyncSession. Rows in, plain rows out; no HTTP here."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import (
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import defer

from datamonkey_chat.storage.models import (
    ConversationRow,
    DatasetRow,
    JobRow,
    MessageRow,
    SessionRow,
    VisualizationRow,
)
from datamonkey_chat.storage.text import storable


async def add_session(db: AsyncSession, user_id: str, now_ms: int) -> None:
    db.add(SessionRow(user_id=user_id, created_ms=now_ms, last_seen_ms=now_ms))


async def get_session(db: AsyncSession, user_id: str) -> SessionRow | None:
    return await db.get(SessionRow, user_id)


async def delete_session(db: AsyncSession, user_id: str) -> None:
    await db.execute(delete(SessionRow).where(SessionRow.user_id == user_id))


async def touch_session(db: AsyncSession, user_id: str, now_ms: int) -> None:
    await db.execute(
        update(SessionRow).where(SessionRow.user_id == user_id).values(last_seen_ms=now_ms)
    )


async def get_conversation(db: AsyncSession, conversation_id: str) -> ConversationRow | None:
    if not storable(conversation_id):  # no row can have it, and PostgreSQL would refuse the query
        return None
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


async def add_messages(db: AsyncSession, rows: list[MessageRow]) -> None:
    db.add_all(rows)


# ---------------------------------------------------------------- paging and the send path
# Core statements (no ORM identity map) on a session or a bare connection; each is one round
# trip served by an index, whatever the conversation's length.

Executor = AsyncConnection | AsyncSession


async def conversation_head(db: Executor, conversation_id: str) -> Row[Any] | None:
    """(user_id, title, last_seq) of a conversation, or None."""
    query = select(ConversationRow.user_id, ConversationRow.title, ConversationRow.last_seq).where(
        ConversationRow.id == conversation_id
    )
    return cast("Row[Any] | None", (await db.execute(query)).first())


def _message_columns(for_model: bool, records: bool) -> tuple[Any, ...]:
    """What history needs (each reply's size in the context budget, and its record when
    `records`), or otherwise what the wire shows."""
    m = MessageRow
    if not for_model:
        return (m.seq, m.role, m.content, m.timestamp_ms, m.tool_events)
    return (m.seq, m.role, m.content, m.model_chars) + ((m.model_messages,) if records else ())


async def messages_before(
    db: Executor,
    conversation_id: str,
    before_seq: int | None,
    limit: int,
    *,
    for_model: bool = False,
    records: bool = True,
) -> list[Row[Any]]:
    """Up to `limit` messages older than `before_seq` (all if None), newest first.

    The unique (conversation_id, seq) index serves this as a backward range scan.
    """
    query = select(*_message_columns(for_model, records)).where(
        MessageRow.conversation_id == conversation_id
    )
    if before_seq is not None:
        query = query.where(MessageRow.seq < before_seq)
    query = query.order_by(MessageRow.seq.desc()).limit(limit)
    return list((await db.execute(query)).all())


async def message_records(
    db: Executor, conversation_id: str, seqs: Collection[int]
) -> dict[int, str | None]:
    """The model's records (`model_messages`) of these messages, by seq."""
    if not seqs:
        return {}
    m = MessageRow
    query = select(m.seq, m.model_messages).where(
        m.conversation_id == conversation_id, m.seq.in_(list(seqs))
    )
    return {row.seq: row.model_messages for row in await db.execute(query)}


async def conversation_and_messages(
    db: Executor,
    conversation_id: str,
    before_seq: int | None,
    limit: int,
    *,
    for_model: bool = False,
    records: bool = True,
) -> list[Row[Any]]:
    """The conversation's (user_id, title, last_seq) on every row, beside up to `limit` of its
    messages older than `before_seq`, newest first: one statement, so one round trip (with
    SQLite, every statement is a hop to the driver's thread and back). No row: no such
    conversation; one row with a null `seq`: no such messages."""
    parameters: dict[str, Any] = {"conversation_id": conversation_id, "limit": limit}
    if before_seq is not None:
        parameters["before_seq"] = before_seq
    query = _conversation_and_messages(before_seq is not None, for_model, records)
    return cast("list[Row[Any]]", list((await db.execute(query, parameters)).all()))


@functools.cache
def _conversation_and_messages(before: bool, for_model: bool, records: bool) -> Select[Any]:
    # Built once, with bound parameters: building and hashing the statement on every send
    # and page cost more than running it.
    m, c = MessageRow, ConversationRow
    # The newest messages on their own (a backward scan of the unique index that stops after
    # `limit`), joined to the conversation's row afterwards.
    newest = select(*_message_columns(for_model, records)).where(
        m.conversation_id == bindparam("conversation_id")
    )
    if before:
        newest = newest.where(m.seq < bindparam("before_seq"))
    window = newest.order_by(m.seq.desc()).limit(bindparam("limit")).subquery()
    return (
        select(c.user_id, c.title, c.last_seq, *window.c)
        .select_from(c)
        .outerjoin(window, true())
        .where(c.id == bindparam("conversation_id"))
        .order_by(window.c.seq.desc())
    )


async def conversations_after(
    db: Executor, user_id: str, after: tuple[int, str] | None, limit: int
) -> list[Row[Any]]:
    """(id, title, created_ms, updated_ms) of a user's conversations, newest-updated first
    (ties by id), after the (updated_ms, id) key; the (user_id, updated_ms, id) index serves it."""
    c = ConversationRow
    query = select(c.id, c.title, c.created_ms, c.updated_ms).where(c.user_id == user_id)
    if after is not None:
        updated_ms, conversation_id = after
        query = query.where(
            or_(
                ConversationRow.updated_ms < updated_ms,
                and_(
                    ConversationRow.updated_ms == updated_ms, ConversationRow.id > conversation_id
                ),
            )
        )
    query = query.order_by(c.updated_ms.desc(), c.id).limit(limit)
    return cast("list[Row[Any]]", list((await db.execute(query)).all()))


async def advance_conversations(
    db: Executor, advances: Collection[tuple[str, int, int]]
) -> dict[str, int]:
    """For each (conversation_id, count, updated_ms), distinct ids: add `count` to `last_seq`
    and set `updated_ms`, all in one statement. The new `last_seq` by id; an id missing
    from the answer has no row.

    The UPDATE's row locks serialize writers of a conversation until their commit; on
    PostgreSQL a waiting writer re-reads the row it waited for, so numbers never collide."""
    if not advances:
        return {}
    c = ConversationRow
    counts = {conversation_id: count for conversation_id, count, _ in advances}
    times = {conversation_id: updated_ms for conversation_id, _, updated_ms in advances}
    result = await db.execute(
        update(c)
        .where(c.id.in_(list(counts)))
        .values(
            last_seq=c.last_seq + case(counts, value=c.id, else_=0),
            updated_ms=case(times, value=c.id, else_=c.updated_ms),
        )
        .returning(c.id, c.last_seq)
    )
    return {row[0]: int(row[1]) for row in result}


async def insert_messages(db: Executor, rows: list[dict[str, Any]]) -> None:
    """One executemany for many message rows."""
    if rows:
        await db.execute(insert(MessageRow.__table__), rows)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------- datasets


async def add_dataset(db: AsyncSession, row: DatasetRow) -> None:
    db.add(row)


async def get_dataset(db: AsyncSession, dataset_id: str) -> DatasetRow | None:
    if not storable(dataset_id):  # no row can have it, and PostgreSQL would refuse the query
        return None
    return await db.get(DatasetRow, dataset_id)


async def list_datasets(db: AsyncSession, user_id: str) -> list[DatasetRow]:
    query = (
        select(DatasetRow)
        .options(defer(DatasetRow.content))  # listing never needs the file itself
        .where(DatasetRow.user_id == user_id)
        .order_by(DatasetRow.created_ms.desc(), DatasetRow.id)
    )
    return list((await db.scalars(query)).all())


async def delete_dataset(db: AsyncSession, dataset_id: str) -> None:
    await db.execute(delete(DatasetRow).where(DatasetRow.id == dataset_id))


# ---------------------------------------------------------------- jobs
# Every state change is a conditional UPDATE whose rowcount says whether it won: two
# runners never claim the same job, and a cancelled job is never overwritten by its result.


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


async def add_job(db: AsyncSession, row: JobRow) -> None:
    db.add(row)


async def get_job(db: AsyncSession, job_id: str) -> JobRow | None:
    if not storable(job_id):  # no row can have it, and PostgreSQL would refuse the query
        return None
    return await db.get(JobRow, job_id)


async def delete_job(db: AsyncSession, job_id: str) -> None:
    await db.execute(delete(JobRow).where(JobRow.id == job_id))


async def set_job_notes(db: AsyncSession, job_id: str, notes: str) -> None:
    await db.execute(update(JobRow).where(JobRow.id == job_id).values(notes=notes))


async def list_jobs(
    db: AsyncSession, user_id: str, filters: dict[str, str | None] | None = None
) -> list[JobRow]:
    """The user's jobs, newest first; `filters` maps column name to value (None: any)."""
    query = (
        select(JobRow)
        .options(defer(JobRow.result))
        .where(JobRow.user_id == user_id)
        .order_by(JobRow.created_ms.desc(), JobRow.id)
    )
    for column, value in (filters or {}).items():
        if value is not None and not storable(value):
            return []  # no row can have it, and PostgreSQL would refuse the query
        if value is not None:
            query = query.where(getattr(JobRow, column) == value)
    return list((await db.scalars(query)).all())


async def latest_job_id(db: AsyncSession, user_id: str) -> str | None:
    query = (
        select(JobRow.id)
        .where(JobRow.user_id == user_id)
        .order_by(JobRow.created_ms.desc(), JobRow.id)
        .limit(1)
    )
    return await db.scalar(query)


async def queued_job_ids(db: AsyncSession, limit: int) -> list[str]:
    query = (
        select(JobRow.id)
        .where(JobRow.status == "queued")
        .order_by(JobRow.created_ms, JobRow.id)
        .limit(limit)
    )
    return list((await db.scalars(query)).all())


async def claim_job(db: AsyncSession, job_id: str, runner_id: str, now_ms: int) -> bool:
    result = await db.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == "queued")
        .values(
            status="running",
            runner_id=runner_id,
            heartbeat_ms=now_ms,
            started_ms=now_ms,
            attempts=JobRow.attempts + 1,
            progress=0.0,
            stage="Starting",
        )
    )
    return _rowcount(result) == 1


async def claim_queued_jobs(db: AsyncSession, runner_id: str, now_ms: int, limit: int) -> list[str]:
    """Claim up to `limit` of the oldest queued jobs; returns the ids this runner won.

    On PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED, so runners of several
    processes claiming at once each take different jobs instead of waiting on each other.
    """
    # A CTE, not `id IN (subquery)`: with the locking subquery inside IN, PostgreSQL 15 was
    # seen claiming every queued job, LIMIT or not. A CTE is run once, as written.
    picked = (
        select(JobRow.id)
        .where(JobRow.status == "queued")
        .order_by(JobRow.created_ms, JobRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # SQLite: no row locks, one writer at a time
        .cte("picked")
    )
    result = await db.execute(
        update(JobRow)
        .where(JobRow.id == picked.c.id, JobRow.status == "queued")
        .values(
            status="running",
            runner_id=runner_id,
            heartbeat_ms=now_ms,
            started_ms=now_ms,
            attempts=JobRow.attempts + 1,
            progress=0.0,
            stage="Starting",
            slurm_job_id=None,
        )
        .returning(JobRow.id, JobRow.created_ms)
        .execution_options(synchronize_session=False)
    )
    return [row.id for row in sorted(result.all(), key=lambda r: (r.created_ms, r.id))]


async def update_running_job(
    db: AsyncSession, job_id: str, runner_id: str, values: dict[str, Any]
) -> bool:
    """Write `values` only while this runner still owns the running job."""
    result = await db.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status == "running", JobRow.runner_id == runner_id)
        .values(**values)
    )
    return _rowcount(result) == 1


async def heartbeat(db: AsyncSession, runner_id: str, now_ms: int) -> None:
    await db.execute(
        update(JobRow)
        .where(JobRow.status == "running", JobRow.runner_id == runner_id)
        .values(heartbeat_ms=now_ms)
    )


async def still_running(db: AsyncSession, runner_id: str, job_ids: Collection[str]) -> set[str]:
    """Which of `job_ids` this runner still owns as running (others were cancelled)."""
    if not job_ids:
        return set()
    query = select(JobRow.id).where(
        JobRow.id.in_(list(job_ids)), JobRow.status == "running", JobRow.runner_id == runner_id
    )
    return set((await db.scalars(query)).all())


async def cancel_job(db: AsyncSession, job_id: str, message: str, now_ms: int) -> bool:
    result = await db.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status.in_(("queued", "running")))
        .values(status="error", error_message=message, finished_ms=now_ms, runner_id=None)
    )
    return _rowcount(result) == 1


async def stale_running_jobs(db: AsyncSession, cutoff_ms: int) -> list[Any]:
    """Running jobs whose runner stopped sending heartbeats: rows of (id, attempts,
    slurm_job_id, notes)."""
    query = select(JobRow.id, JobRow.attempts, JobRow.slurm_job_id, JobRow.notes).where(
        JobRow.status == "running", func.coalesce(JobRow.heartbeat_ms, 0) < cutoff_ms
    )
    return list((await db.execute(query)).all())


async def release_jobs(db: AsyncSession, runner_id: str, job_ids: Collection[str]) -> None:
    """Give running jobs up for adoption now (heartbeat 0) instead of after the stale time."""
    if job_ids:
        await db.execute(
            update(JobRow)
            .where(
                JobRow.id.in_(list(job_ids)),
                JobRow.status == "running",
                JobRow.runner_id == runner_id,
            )
            .values(heartbeat_ms=0)
        )


async def recover_job(
    db: AsyncSession, job_id: str, cutoff_ms: int, values: dict[str, Any]
) -> bool:
    """Apply `values` to a running job only if its heartbeat is still stale (no race)."""
    result = await db.execute(
        update(JobRow)
        .where(
            JobRow.id == job_id,
            JobRow.status == "running",
            func.coalesce(JobRow.heartbeat_ms, 0) < cutoff_ms,
        )
        .values(**values)
    )
    return _rowcount(result) == 1


# ---------------------------------------------------------------- visualizations


async def add_visualization(db: AsyncSession, row: VisualizationRow) -> None:
    db.add(row)
    await db.flush()  # a duplicate id fails here, inside the caller's transaction


async def get_visualization(db: AsyncSession, viz_id: str) -> VisualizationRow | None:
    if not storable(viz_id):  # no row can have it, and PostgreSQL would refuse the query
        return None
    return await db.get(VisualizationRow, viz_id)


async def list_visualizations(
    db: AsyncSession, user_id: str, job_id: str | None, dataset_id: str | None
) -> list[VisualizationRow]:
    """The user's visualizations, oldest first; the (user_id, job_id) index serves it."""
    v = VisualizationRow
    query = select(v).where(v.user_id == user_id).order_by(v.created_ms, v.id)
    for column, value in ((v.job_id, job_id), (v.dataset_id, dataset_id)):
        if value is not None and not storable(value):
            return []
        if value is not None:
            query = query.where(column == value)
    return list((await db.scalars(query)).all())


async def existing_visualization_ids(db: AsyncSession, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    query = select(VisualizationRow.id).where(VisualizationRow.id.in_(ids))
    return set((await db.scalars(query)).all())


async def update_visualization(
    db: AsyncSession, viz_id: str, user_id: str, values: dict[str, Any]
) -> bool:
    result = await db.execute(
        update(VisualizationRow)
        .where(VisualizationRow.id == viz_id, VisualizationRow.user_id == user_id)
        .values(**values)
    )
    return _rowcount(result) == 1


async def delete_visualization(db: AsyncSession, viz_id: str) -> None:
    await db.execute(delete(VisualizationRow).where(VisualizationRow.id == viz_id))


async def delete_visualizations(
    db: AsyncSession, user_id: str, *, job_id: str | None = None, dataset_id: str | None = None
) -> None:
    """A job's or a dataset's visualizations (the user's only: ids are per user)."""
    v = VisualizationRow
    query = delete(v).where(v.user_id == user_id)
    query = query.where(v.job_id == job_id) if job_id is not None else query
    query = query.where(v.dataset_id == dataset_id) if dataset_id is not None else query
    if job_id is None and dataset_id is None:
        raise ValueError("name the job or the dataset whose visualizations to delete")
    await db.execute(query)
