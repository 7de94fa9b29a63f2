"""Rate-limit counters: in Redis, shared by every server process, else in this process.

Fixed windows: a counter per (kind, subject, window) that expires with its window. One
Redis round trip per counted request (INCR and EXPIRE in one pipeline). When Redis is not
configured, or stops answering, the counters live in this process instead (the limits
then hold per process) and Redis is tried again a little later; a request never fails
because Redis is down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5  # a hung Redis delays one request by this much, then is skipped
REDIS_RETRY_SECONDS = 30.0  # how long to count in-process before trying Redis again
LOCAL_KEYS_KEPT = 100_000  # in-process counters; older windows are dropped past this


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # whole seconds until the window ends (for Retry-After)


class RateLimiter:
    def __init__(
        self,
        redis_url: str | None,
        key_prefix: str,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis_url = redis_url
        self._prefix = key_prefix
        self._window = window_seconds
        self._clock = clock
        self._redis: Any = None
        self._redis_down_until = 0.0
        self._local: dict[str, int] = {}

    async def backend(self) -> str:
        """Where the counters are now: "redis" (it answers a ping) or "in-process"."""
        now = self._clock()
        if not self._redis_url or now < self._redis_down_until:
            return "in-process"
        try:
            await self._client().ping()
        except Exception as exc:
            self._redis_down(now, exc)
            return "in-process"
        return "redis"

    async def hit(self, kind: str, subject: str, limit: int) -> Verdict:
        """Count one request of `kind` by `subject`; allowed while within `limit` a window."""
        now = self._clock()
        window = int(now // self._window)
        retry_after = max(1, math.ceil((window + 1) * self._window - now))
        key = f"{self._prefix}:{kind}:{subject}:{window}"
        count = await self._count_in_redis(key, now)
        if count is None:
            count = self._count_here(key, window)
        return Verdict(count <= limit, retry_after)

    async def _count_in_redis(self, key: str, now: float) -> int | None:
        if not self._redis_url or now < self._redis_down_until:
            return None
        try:
            client = self._client()
            async with client.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, math.ceil(self._window) + 1)
                count, _ = await pipe.execute()
            return int(count)
        except Exception as exc:  # Redis down, slow or misconfigured: never fail the request
            self._redis_down(now, exc)
            return None

    def _redis_down(self, now: float, exc: Exception) -> None:
        self._redis_down_until = now + REDIS_RETRY_SECONDS
        log.warning(
            "rate limits: Redis unavailable (%s); counting in this process for %.0f s",
            type(exc).__name__,
            REDIS_RETRY_SECONDS,
        )

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(
                self._redis_url or "",
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return self._redis

    def _count_here(self, key: str, window: int) -> int:
        if len(self._local) >= LOCAL_KEYS_KEPT:
            suffix = f":{window}"
            self._local = {k: v for k, v in self._local.items() if k.endswith(suffix)}
        count = self._local.get(key, 0) + 1
        self._local[key] = count
        return count

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
