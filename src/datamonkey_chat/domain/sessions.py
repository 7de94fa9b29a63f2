"""Sessions: HS256 JWTs whose `sub` is a random user id kept in the sessions table.

A token is valid while its session's row exists. A process checks the row at most once a
minute per user; ending a session (deleting the row) makes every process forget that check
at once: this one directly, the others sharing PostgreSQL through the change feed
(migration 0004). While the feed cannot listen, every request checks the row.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt

from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.domain.errors import UnauthorizedError
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
SECRET_FILE_NAME = "jwt_secret"
LAST_SEEN_RESOLUTION_S = 60.0  # check the row and write last_seen at most once a minute
VERIFIED_TOKENS_KEPT = 10_000  # tokens whose signature was checked, kept to skip re-checking


@dataclass(frozen=True)
class NewSession:
    user_id: str
    token: str


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else one generated once and kept (mode 0600) in data_dir."""
    if configured:
        return configured
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable secret; delete it to make a new one")
    return secret


class SessionService:
    def __init__(
        self,
        database: Database,
        secret: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._clock = clock
        self._database = database
        self._changes = changes or ChangeFeed(database)
        # Whether a recent check of a session's row may be trusted: only while every other
        # process's ended sessions can be heard.
        self._trusted = self._changes.listening
        self._secret = secret
        self._ttl_seconds = ttl_seconds
        self._last_seen_written: dict[str, float] = {}  # user id -> monotonic time
        self._verified: dict[str, tuple[str, float]] = {}  # token -> (user id, exp)
        self._touches: set[asyncio.Task[None]] = set()

    async def create(self) -> NewSession:
        user_id = secrets.token_hex(16)
        issued = int(time.time())
        claims = {"sub": user_id, "iat": issued, "exp": issued + int(self._ttl_seconds)}
        token = jwt.encode(claims, self._secret, algorithm=ALGORITHM)
        async with self._database.transaction() as db:
            await repository.add_session(db, user_id, now_ms())
        self._last_seen_written[user_id] = self._clock()
        return NewSession(user_id=user_id, token=token)

    def decode(self, token: str) -> str:
        """The user id a token names, if its signature and expiry hold (no DB access)."""
        known = self._verified.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinned: never `none`, never a key-confusion alg
                options={"require": ["sub", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("Session token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError("Invalid session token") from exc
        user_id = claims.get("sub")
        if not isinstance(user_id, str) or not user_id:
            raise UnauthorizedError("Invalid session token")
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()  # cheap bound; the next calls simply verify again
        self._verified[token] = (user_id, float(claims["exp"]))
        return user_id

    async def authenticate(self, token: str | None) -> str:
        """The user id behind a valid token of a known session, else UnauthorizedError."""
        if not token:
            raise UnauthorizedError("Missing user token")
        user_id = self.decode(token)
        last_checked = self._last_seen_written.get(user_id)
        now = self._clock()
        recent = last_checked is not None and now - last_checked < LAST_SEEN_RESOLUTION_S
        if recent and self._trusted:
            return user_id
        if not recent:
            # Claim the once-a-minute check before awaiting: the user's concurrent requests
            # must not all queue up behind the same session check and last-seen write.
            if len(self._last_seen_written) >= VERIFIED_TOKENS_KEPT:
                self._last_seen_written.clear()
            self._last_seen_written[user_id] = now
        try:
            async with self._database.session() as db:
                known = await repository.get_session(db, user_id) is not None
        except BaseException:
            if not recent:
                self._last_seen_written.pop(user_id, None)
            raise
        if not known:
            self._last_seen_written.pop(user_id, None)
            raise UnauthorizedError("Unknown session")
        if not recent:
            self._touch_later(user_id)
        return user_id

    async def start(self) -> None:
        """Hear the sessions other processes end (PostgreSQL)."""
        await self._changes.start(on_listening=self._set_trusted, on_session_ended=self._forget)
        self._set_trusted(self._changes.listening)

    async def end(self, user_id: str) -> None:
        """End a session: its token is refused from now on, in every process."""
        async with self._database.transaction() as db:
            await repository.delete_session(db, user_id)
        self._forget(user_id)

    def _forget(self, user_id: str) -> None:
        """The session may have ended: check its row on its next request."""
        self._last_seen_written.pop(user_id, None)

    def _set_trusted(self, listening: bool) -> None:
        self._trusted = listening
        self._last_seen_written.clear()  # checks from before may have missed an end

    def _touch_later(self, user_id: str) -> None:
        """Record last-seen without making the request wait for a write."""
        task = asyncio.create_task(self._touch(user_id, now_ms()))
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)

    async def _touch(self, user_id: str, seen_ms: int) -> None:
        try:
            async with self._database.transaction() as db:
                await repository.touch_session(db, user_id, seen_ms)
        except Exception:  # last-seen is bookkeeping; never fail anything over it
            log.warning("could not record last-seen of a session", exc_info=True)

    async def close(self) -> None:
        await self._changes.stop()
        if self._touches:
            await asyncio.wait(self._touches, timeout=5)
