"""Group commit: inserts that arrive while a transaction is in flight share the next one.

Each caller still returns only after its row is committed, so nothing is acknowledged
that could be lost; under load, one transaction and one multi-row INSERT carry many rows
instead of one each. A row the database refuses fails alone: the batch is split until the
rest commit.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import Base

MAX_ROWS_PER_TRANSACTION = 256


class GroupInserter:
    def __init__(self, database: Database, model: type[Base]) -> None:
        self._database = database
        # The table, not the ORM class, on a Core connection: an executemany skips the ORM's
        # session and bulk-insert bookkeeping, which cost more than the INSERT itself.
        self._insert = insert(cast(Table, model.__table__))
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def insert(self, row: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((row, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # The batch runs in the flusher task, not in any caller: a caller that goes away
        # (its client disconnected) cancels only its own future, never the others'.
        await done

    async def _flush(self) -> None:
        # Let the requests already scheduled in this turn of the event loop join the first
        # batch, rather than committing the first row alone while the rest queue behind it.
        await asyncio.sleep(0)
        while self._waiting:
            batch = self._waiting[:MAX_ROWS_PER_TRANSACTION]
            del self._waiting[:MAX_ROWS_PER_TRANSACTION]
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        """Commit `batch`; if a row is refused, bisect so that it fails alone."""
        try:
            async with self._database.write_connection() as connection:
                await connection.execute(self._insert, [row for row, _ in batch])
        except BaseException as exc:
            if len(batch) > 1 and _refused_a_row(exc):
                # One row the database refuses must not fail its neighbours: each half is
                # committed on its own, down to the bad row (about 2 log2(n) transactions).
                middle = len(batch) // 2
                await self._commit(batch[:middle])
                await self._commit(batch[middle:])
                return
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)


def _refused_a_row(exc: BaseException) -> bool:
    """A failure one row's values can cause (a constraint, a value the database or its driver
    refuses), as opposed to the database being unreachable: only then is bisecting worth it,
    or an outage would cost every batch 2n failed transactions instead of one."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        # SQLSTATE class 22 (data exception, e.g. NUL in text) or 23 (a constraint)
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
        return sqlstate[:2] in ("22", "23") or isinstance(exc.orig, ValueError)
    return isinstance(exc, ValueError)  # e.g. UnicodeEncodeError while binding (SQLite)
