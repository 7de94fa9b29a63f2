"""Rate limits at the HTTP edge, for a public server with anonymous sessions.

Uploads, job starts and sends are counted per session (per client address without a valid
token) before their body is read, so a refused request costs almost nothing; new sessions
are counted per client address where they are created (api/deps.py). Past a limit: 429
with `Retry-After` and the ServerError shape. The counters are in Redis when configured
(shared by every server process), else in this process (storage/rate_limits.py).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from datamonkey_chat.api.errors import rate_limited
from datamonkey_chat.domain.errors import RateLimitedError, UnauthorizedError
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.rate_limits import RateLimiter

NEW_SESSIONS = "new_sessions"
UPLOADS = "uploads"
JOB_STARTS = "job_starts"
SENDS = "sends"

WHAT = {
    NEW_SESSIONS: "new sessions from this address",
    UPLOADS: "uploads",
    JOB_STARTS: "job starts",
    SENDS: "messages sent",
}


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits
        self._window = settings.rate_limit_window_seconds
        self._limits = {
            NEW_SESSIONS: settings.rate_limit_new_sessions,
            UPLOADS: settings.rate_limit_uploads,
            JOB_STARTS: settings.rate_limit_job_starts,
            SENDS: settings.rate_limit_sends,
        }
        self._limiter = RateLimiter(
            settings.redis_url, settings.redis_key_prefix, settings.rate_limit_window_seconds
        )

    async def health(self) -> str:
        """Where requests are counted: redis, in-process (no Redis, or it does not answer)
        or off."""
        return await self._limiter.backend() if self.enabled else "off"

    async def check(self, kind: str, subject: str) -> None:
        """Count one request; RateLimitedError (429) past the limit."""
        limit = self._limits[kind]
        if not self.enabled or limit <= 0:
            return
        verdict = await self._limiter.hit(kind, subject, limit)
        if not verdict.allowed:
            raise RateLimitedError(
                f"At most {limit} {WHAT[kind]} per {self._window:g} s; "
                f"try again in {verdict.retry_after} s",
                verdict.retry_after,
            )

    async def close(self) -> None:
        await self._limiter.close()


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def check_new_session(request: Request) -> None:
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        await limits.check(NEW_SESSIONS, client_address(request.scope))


class RateLimitMiddleware:
    """Counts the limited POSTs by path, before the route reads their body."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self._kinds = [
            (re.compile(re.escape(prefix) + r"/datasets/?"), UPLOADS),
            (re.compile(re.escape(prefix) + r"/methods/[^/]+-start/?"), JOB_STARTS),
            (re.compile(re.escape(prefix) + r"/chat/[^/]+/messages/?"), SENDS),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            kind = self._kind(scope["path"])
            limits: RateLimits | None = getattr(scope["app"].state, "rate_limits", None)
            if kind is not None and limits is not None and limits.enabled:
                try:
                    await limits.check(kind, _subject(scope))
                except RateLimitedError as exc:
                    await rate_limited(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _kind(self, path: str) -> str | None:
        for pattern, kind in self._kinds:
            if pattern.fullmatch(path):
                return kind
        return None


def _subject(scope: Scope) -> str:
    """The session a valid token names (signature only: cheap), else the client address."""
    token = None
    for name, value in scope.get("headers", []):
        if name == b"user_token":
            token = value.decode("latin-1")
            break
        if name == b"authorization" and token is None:
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                token = credentials.strip()
    sessions: Any = getattr(scope["app"].state, "sessions", None)
    if token and sessions is not None:
        try:
            return "session:" + sessions.decode(token)
        except UnauthorizedError:
            pass
    return "address:" + client_address(scope)
