"""Which cached reads a write made stale, told to every server process sharing PostgreSQL.

A trigger on the conversations table (migration 0003) calls `pg_notify` inside each write
transaction, and one on the sessions table announces each ended session (migration 0004),
so the notice goes out when, and only if, the write commits, before the writer answers its
client. Each process listens on a connection of its own and forgets what it had cached for
the keys it hears (conversations, and the recent check of an ended session), except for
the conversations it wrote itself (the notice names the writing backend's process id). While that
connection is down, nothing can be trusted to be fresh: the process is told so, stops
caching and clears what it had, and starts again only once it listens again.

On SQLite there is nothing to hear: the database is one process's file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from datamonkey_chat.storage.db import Database

log = logging.getLogger(__name__)

CHANNEL = "datamonkey_chat_changes"  # as in migration 0003's trigger
SESSIONS_CHANNEL = "datamonkey_chat_sessions"  # as in migration 0004's trigger
APPLICATION_NAME = "datamonkey-chat change feed"
RETRY_SECONDS = (1.0, 30.0)  # first and longest wait before listening again
LIVENESS_SECONDS = 5.0  # how often the listening connection proves it is still there

OnChange = Callable[[str, str | None], None]  # (user id, conversation id)
OnListening = Callable[[bool], None]
OnSessionEnded = Callable[[str], None]  # (user id)


class ChangeFeed:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.shared = not database.is_sqlite
        self._listener: asyncio.Task[None] | None = None
        self._on_change: list[OnChange] = []
        self._on_listening: list[OnListening] = []
        self._on_session_ended: list[OnSessionEnded] = []
        self.listening = not self.shared

    async def start(
        self,
        on_change: OnChange | None = None,
        on_listening: OnListening | None = None,
        on_session_ended: OnSessionEnded | None = None,
    ) -> None:
        """Listen for other processes' changes; returns once the first attempt is made.

        Each caller (the read cache, the sessions) adds its handlers; one connection
        listens for all of them.
        """
        if on_change is not None:
            self._on_change.append(on_change)
        if on_listening is not None:
            self._on_listening.append(on_listening)
        if on_session_ended is not None:
            self._on_session_ended.append(on_session_ended)
        if not self.shared or self._listener is not None:
            return
        first_attempt = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(first_attempt))
        await first_attempt

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None

    async def _listen(self, first_attempt: asyncio.Future[None]) -> None:
        wait, longest = RETRY_SECONDS
        while True:
            try:
                await self._listen_once(first_attempt)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change feed: %s", type(exc).__name__)
            finally:
                if self.listening:
                    wait = RETRY_SECONDS[0]  # it was listening until now: try again soon
                self._set_listening(False)
                _resolve(first_attempt)
            log.warning("change feed: not listening; reads skip the cache; again in %.0f s", wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest)

    async def _listen_once(self, first_attempt: asyncio.Future[None]) -> None:
        connection = await self._connect()
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(CHANNEL, self._received)
            await connection.add_listener(SESSIONS_CHANNEL, self._session_ended)
            self._set_listening(True)
            _resolve(first_attempt)
            await self._watch(connection, lost)
        finally:
            connection.terminate()

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        args, kwargs = self._database.engine.dialect.create_connect_args(self._database.engine.url)
        for adapter_only in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(adapter_only, None)  # SQLAlchemy's own options, not asyncpg's
        kwargs.setdefault("server_settings", {})["application_name"] = APPLICATION_NAME
        kwargs.setdefault("timeout", 10)
        return await asyncpg.connect(*args, **kwargs)

    @staticmethod
    async def _watch(connection: Any, lost: asyncio.Event) -> None:
        """Return when the connection closes or stops answering."""
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LIVENESS_SECONDS):  # not wait_for: it can eat a cancel
                    await lost.wait()
                return
            await connection.execute("SELECT 1", timeout=LIVENESS_SECONDS)

    def _received(self, _connection: Any, pid: int, _channel: str, payload: str) -> None:
        if pid in self._database.own_backend_pids:
            # Our own write: forgotten here when it was made. Forgetting it again now would
            # throw away what was kept since (a send's history window, with its new turn).
            return
        user_id, _, conversation_id = payload.partition(" ")  # as the trigger writes it
        for handler in self._on_change:
            handler(user_id, conversation_id or None)

    def _session_ended(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        for handler in self._on_session_ended:
            handler(payload)  # the user id

    def _set_listening(self, listening: bool) -> None:
        if listening != self.listening:
            self.listening = listening
            for handler in self._on_listening:
                handler(listening)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
