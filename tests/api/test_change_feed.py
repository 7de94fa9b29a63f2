"""Two servers on one PostgreSQL database: each one's read cache follows the other's writes.

Each app has its own engine, cache and change-feed connection, as two server processes
would; only PostgreSQL carries the news between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import httpx
import pytest

from datamonkey_chat.api.app import create_app
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.change_feed import APPLICATION_NAME
from tests.api.test_chat_api import auth, new_session
from tests.conftest import open_client, postgres_connection

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

Servers = tuple[httpx.AsyncClient, httpx.AsyncClient]


def serving(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return asynccontextmanager(open_client)(create_app(settings))


@pytest.fixture
async def servers(make_settings: Callable[..., Settings]) -> AsyncIterator[Servers]:
    """`cached` keeps a read cache (the default); `writer` has none, but listens too, for the
    sessions other processes end."""
    async with AsyncExitStack() as stack:
        cached = await stack.enter_async_context(serving(make_settings()))
        writer = await stack.enter_async_context(serving(make_settings(read_cache_size=0)))
        yield cached, writer


async def eventually(read: Callable[[], Awaitable[object]], expected: object) -> None:
    """Poll `read` until it returns `expected`: a notification takes a moment to arrive."""
    for _ in range(200):
        if await read() == expected:
            return
        await asyncio.sleep(0.02)
    assert await read() == expected


async def test_cached_reads_follow_the_other_servers_writes(servers: Servers):
    cached, writer = servers
    token, conversation_id = await new_session(cached)

    async def messages() -> int:
        response = await cached.get(f"/chat/{conversation_id}/messages", headers=auth(token))
        return len(response.json()["messages"]) if response.status_code == 200 else -1

    async def title() -> str | None:
        response = await cached.get(f"/chat/{conversation_id}", headers=auth(token))
        return response.json()["title"] if response.status_code == 200 else "gone"

    async def listed() -> int:
        response = await cached.get("/chat", headers=auth(token))
        return len(response.json()["conversations"])

    # Read through the cache first, so that a stale copy would be there to serve.
    assert (await messages(), await title(), await listed()) == (0, None, 1)

    sent = await writer.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "What is FEL?"}
    )
    assert sent.status_code == 200
    await eventually(messages, 2)

    renamed = await writer.patch(
        f"/chat/{conversation_id}", headers=auth(token), json={"title": "env gene"}
    )
    assert renamed.status_code == 200
    await eventually(title, "env gene")

    assert (await writer.post("/chat", headers=auth(token), json={})).status_code == 201
    await eventually(listed, 2)

    deleted = await writer.delete(f"/chat/{conversation_id}", headers=auth(token))
    assert deleted.status_code == 204
    await eventually(title, "gone")
    await eventually(listed, 1)


async def test_writes_missed_while_the_feed_was_down_are_not_served_stale(servers: Servers):
    cached, writer = servers
    token, conversation_id = await new_session(cached)

    async def title() -> str | None:
        response = await cached.get(f"/chat/{conversation_id}", headers=auth(token))
        return response.json()["title"]

    assert await title() is None  # cached now

    await _drop_feed_connections()
    renamed = await writer.patch(
        f"/chat/{conversation_id}", headers=auth(token), json={"title": "new"}
    )
    assert renamed.status_code == 200
    # Its notification went nowhere; the cached server must still not answer the old title.
    await eventually(title, "new")
    # Once it listens again, it neither serves the copy from before the drop...
    await eventually(_feed_connections, 2)
    for _ in range(25):
        assert await title() == "new"
        await asyncio.sleep(0.02)
    # ...nor misses the writes that follow.
    await writer.patch(f"/chat/{conversation_id}", headers=auth(token), json={"title": "newer"})
    await eventually(title, "newer")


async def test_a_session_ended_on_one_server_is_refused_by_the_other(servers: Servers):
    cached, writer = servers
    token, conversation_id = await new_session(cached)
    other_token, _ = await new_session(cached)

    async def status() -> int:
        return (await cached.get(f"/chat/{conversation_id}", headers=auth(token))).status_code

    assert await status() == 200  # the session check is now cached for a minute
    assert (await writer.get("/chat", headers=auth(token))).status_code == 200
    ended = await writer.delete("/session", headers=auth(token))
    assert ended.status_code == 204
    assert (await writer.get("/chat", headers=auth(token))).status_code == 401
    await eventually(status, 401)  # as soon as the notice arrives, well within the minute
    assert (await cached.get("/chat", headers=auth(other_token))).status_code == 200


async def _drop_feed_connections() -> None:
    async with postgres_connection() as connection:
        await connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            APPLICATION_NAME,
        )


async def _feed_connections() -> int:
    async with postgres_connection() as connection:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
        )
    return int(count)
