"""Rate limits over the real app and the real Redis (127.0.0.1:6379), each test with a key
prefix of its own; and the in-process fallback when Redis cannot be reached.

The window is made so long (31 years) that no test can straddle two windows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from datamonkey_chat.api.app import create_app
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.rate_limits import RateLimiter
from tests.api.test_chat_api import JSON, auth, new_session
from tests.api.test_datasets_api import FASTA, upload
from tests.conftest import open_client
from tests.unit.test_change_feed import closed_port


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the counters are in Redis or in the process, never in the database."""
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"


REDIS_URL = "redis://127.0.0.1:6379/0"
LONG_WINDOW = 1e9


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no other test (or engineer sharing this Redis) uses; cleared afterwards."""
    import redis.asyncio as redis

    prefix = f"datamonkey_chat_test:{secrets.token_hex(8)}"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, redis.ConnectionError) as exc:  # CI always has Redis; a laptop may not
        await client.aclose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis not reachable: {exc}")
    yield prefix
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def limited(make_settings: Callable[..., Settings], redis_prefix: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "redis_key_prefix": redis_prefix,
            "rate_limit_window_seconds": LONG_WINDOW,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


def serving(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    return asynccontextmanager(open_client)(create_app(settings))


def assert_limited(response: httpx.Response, what: str) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited" and body["error"] == "Too many requests"
    assert what in body["details"]
    assert int(response.headers["Retry-After"]) >= 1


async def test_new_sessions_are_limited_per_address(limited: Callable[..., Settings]):
    async with serving(limited(rate_limit_new_sessions=2)) as client:
        token, _ = await new_session(client)
        await new_session(client)
        refused = await client.post("/chat", headers=JSON)
        assert_limited(refused, "new sessions from this address")
        assert "X-Session-Token" not in refused.headers
        # A client with a session is not starting one: its creates go on.
        assert (await client.post("/chat", headers=auth(token))).status_code == 201
        health = (await client.get("/health")).json()
        assert health["details"]["rate_limits"] == "redis"


async def test_sends_are_limited_per_session(limited: Callable[..., Settings]):
    async with serving(limited(rate_limit_sends=2)) as client:
        token, conversation_id = await new_session(client)
        path = f"/chat/{conversation_id}/messages"
        for _ in range(2):
            sent = await client.post(path, headers=auth(token), json={"message": "list methods"})
            assert sent.status_code == 200
        streamed = await client.post(
            path,
            headers={**auth(token), "Accept": "text/event-stream"},
            json={"message": "list methods"},
        )
        assert_limited(streamed, "messages sent")
        other, other_conversation = await new_session(client)
        fine = await client.post(
            f"/chat/{other_conversation}/messages", headers=auth(other), json={"message": "hi"}
        )
        assert fine.status_code == 200  # another session has its own count


async def test_uploads_and_job_starts_are_limited_before_the_body_is_read(
    limited: Callable[..., Settings],
):
    settings = limited(rate_limit_uploads=1, rate_limit_job_starts=1)
    async with serving(settings) as client:
        token, _ = await new_session(client)
        alignment = await upload(client, FASTA, token)
        assert alignment.status_code == 201
        assert_limited(await upload(client, FASTA, token), "uploads")
        headers = {**JSON, "user_token": token}
        first = await client.post(
            "/methods/fel-start", headers=headers, json={"alignment": "no-such-dataset"}
        )
        assert first.status_code == 404  # counted, though refused for its own reasons
        junk = await client.post("/methods/fel-start", headers=headers, content=b"{not json")
        assert_limited(junk, "job starts")


async def test_limits_hold_across_server_processes(limited: Callable[..., Settings]):
    settings = limited(rate_limit_new_sessions=3)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serving(settings))
        second = await stack.enter_async_context(serving(settings))
        statuses = [(await client.post("/chat", headers=JSON)).status_code for client in
                    (first, second, first, second)]  # fmt: skip
        assert statuses == [201, 201, 201, 429]


async def test_without_redis_the_limits_hold_in_process_and_health_says_so(
    limited: Callable[..., Settings],
):
    settings = limited(redis_url=f"redis://127.0.0.1:{closed_port()}/0", rate_limit_new_sessions=2)
    async with serving(settings) as client:
        statuses = [(await client.post("/chat", headers=JSON)).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
        health = await client.get("/health")
        assert health.json()["details"]["rate_limits"] == "in-process"
        assert health.json()["status"] != "unhealthy"  # informative, never a failure


async def test_limits_can_be_turned_off(limited: Callable[..., Settings]):
    async with serving(limited(rate_limits=False, rate_limit_new_sessions=1)) as client:
        statuses = [(await client.post("/chat", headers=JSON)).status_code for _ in range(3)]
        assert statuses == [201, 201, 201]
        assert (await client.get("/health")).json()["details"]["rate_limits"] == "off"


async def test_retry_after_counts_down_to_the_end_of_the_window(redis_prefix: str):
    now = [60 * 20_000 + 30.0]  # 30 s into a 60 s window
    limiter = RateLimiter(REDIS_URL, redis_prefix, 60.0, clock=lambda: now[0])
    try:
        assert (await limiter.hit("sends", "s1", 1)).allowed
        refused = await limiter.hit("sends", "s1", 1)
        assert not refused.allowed and refused.retry_after == 30
        now[0] += 30.0  # the next window: counting starts again
        assert (await limiter.hit("sends", "s1", 1)).allowed
    finally:
        await limiter.close()
