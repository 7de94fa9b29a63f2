"""Group commit: inserts that arrive while a transaction is in flight share the next one.

Each caller still returns only after its row is committed, so nothing is acknowledged
that could be lost; under load, one transaction and one multi-row INSERT carry many rows
instead of one each.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy import Table, insert

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
            try:
                async with self._database.write_connection() as connection:
                    await connection.execute(self._insert, [row for row, _ in batch])
            except BaseException as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
