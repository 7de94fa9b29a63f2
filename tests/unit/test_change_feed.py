"""The change feed when PostgreSQL cannot be reached: start does not hang, nothing is cached."""

from __future__ import annotations

import socket

from datamonkey_chat.domain.read_cache import ReadCache
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_feed_that_cannot_listen_keeps_the_cache_suspended():
    database = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port()}/none")
    feed = ChangeFeed(database)
    cache: ReadCache[str] = ReadCache(capacity=10, active=feed.listening)
    try:
        await feed.start(cache.forget, cache.set_active)  # returns after the failed attempt
        assert feed.listening is False
        cache.keep_conversation("c1", "alice", "v1", cache.epoch)
        assert cache.conversation("c1") is None
    finally:
        await feed.stop()
        await database.dispose()


async def test_on_sqlite_there_is_nothing_to_listen_to():
    database = Database("sqlite+aiosqlite:///:memory:")
    feed = ChangeFeed(database)
    await feed.start(lambda user_id, conversation_id: None, lambda listening: None)
    assert feed.listening is True
    await feed.stop()
    await database.dispose()
