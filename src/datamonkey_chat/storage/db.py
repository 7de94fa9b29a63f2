"""Engine, sessions and start-up migrations. The one place that knows which database runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant both sides agree on: server processes starting together take turns migrating.
MIGRATION_LOCK_KEY = 0x646D632D6D6967  # "dmc-mig"
SQLITE_POOL_SIZE = 32
SQLITE_POOL_OVERFLOW = 32


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while a turn is being written; the timeout waits out writers.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # PostgreSQL: the server process ids of this pool's open connections, by which the
        # change feed tells this process's own writes (already forgotten here) from others'.
        self.own_backend_pids: set[int] = set()
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            # hide_parameters: errors and logs never carry row values (messages, alignments)
            self.engine: AsyncEngine = create_async_engine(
                url,
                hide_parameters=True,
                # Sessions always end their transaction (commit, or rollback on close), so
                # the pool's own rollback on return is a no-op that would still cost a trip
                # to aiosqlite's thread and back through the event loop.
                pool_reset_on_return=None,
                **_sqlite_pool_sizes(url),
            )
            event.listen(self.engine.sync_engine, "connect", _enable_sqlite_pragmas)
        else:
            self.engine = create_async_engine(
                url,
                pool_size=10,
                max_overflow=20,
                pool_pre_ping=True,
                pool_timeout=10,
                hide_parameters=True,
                connect_args={"timeout": 10},  # fail a request, don't hang it, if PG is gone
            )
            _follow_backend_pids(self.engine, self.own_backend_pids)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; queueing writers here is fairer and faster than
        # letting them collide and back off inside busy_timeout's sleeps.
        self._write_lock: AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.is_sqlite else nullcontext()
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for reads: no ORM session, no write lock."""
        async with self.engine.connect() as connection:
            yield connection

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction: no ORM session, for the hottest inserts."""
        async with self._write_lock, self.engine.begin() as connection:
            yield connection

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        On PostgreSQL under a transaction-level advisory lock: processes started together
        wait for the first to finish, then find the schema at head and do nothing.
        """
        async with self.engine.begin() as connection:
            if not self.is_sqlite:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            await connection.run_sync(_upgrade_to_head)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def _follow_backend_pids(engine: AsyncEngine, pids: set[int]) -> None:
    """Keep `pids` to the backend process ids of the pool's open connections."""

    def opened(_dbapi_connection: Any, record: Any) -> None:
        pid = int(record.driver_connection.get_server_pid())
        record.info["backend_pid"] = pid
        pids.add(pid)

    def closed(_dbapi_connection: Any, record: Any, *_: Any) -> None:
        pids.discard(record.info.pop("backend_pid", None))

    event.listen(engine.sync_engine, "connect", opened)
    for gone in ("close", "invalidate", "soft_invalidate"):
        event.listen(engine.sync_engine, gone, closed)


def _sqlite_pool_sizes(url: str) -> dict[str, int]:
    """A file database's pool: every concurrent read holds a connection of its own (each a
    thread of aiosqlite's). With the default 5 kept, a busy server opened and closed
    overflow connections (a thread, the file, the pragmas) for most reads. (An in-memory
    database has a single connection.)"""
    if ":memory:" in url:
        return {}
    return {"pool_size": SQLITE_POOL_SIZE, "max_overflow": SQLITE_POOL_OVERFLOW}


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade_to_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
