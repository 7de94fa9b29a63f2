import asyncio

import pytest

from datamonkey_chat.domain.errors import UnauthorizedError
from datamonkey_chat.domain.sessions import SessionService
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database


async def last_seen(database: Database, user_id: str) -> int:
    async with database.session() as db:
        row = await repository.get_session(db, user_id)
        assert row is not None
        return row.last_seen_ms


async def test_last_seen_is_recorded_at_most_once_a_minute_without_a_herd(database, monkeypatch):
    clock = [1000.0]
    service = SessionService(database, "s" * 64, ttl_seconds=3600, clock=lambda: clock[0])
    session = await service.create()
    created_seen = await last_seen(database, session.user_id)
    checks = []
    real_get_session = repository.get_session

    async def counting_get_session(db, user_id):
        checks.append(user_id)
        return await real_get_session(db, user_id)

    monkeypatch.setattr(repository, "get_session", counting_get_session)
    await asyncio.sleep(0.002)  # so the new last-seen time differs from creation
    clock[0] += 61  # a minute later: time to check the session and record last-seen
    users = await asyncio.gather(*(service.authenticate(session.token) for _ in range(16)))
    assert users == [session.user_id] * 16
    assert len(checks) == 1  # one check for the 16 concurrent requests
    await service.close()  # let the background last-seen write finish
    assert await last_seen(database, session.user_id) > created_seen


async def test_unknown_session_is_refused_every_time(database):
    service = SessionService(database, "s" * 64, ttl_seconds=3600)
    other = SessionService(database, "s" * 64, ttl_seconds=3600)
    session = await other.create()
    async with database.transaction() as db:
        from sqlalchemy import delete

        from datamonkey_chat.storage.models import SessionRow

        await db.execute(delete(SessionRow))
    for _ in range(2):
        with pytest.raises(UnauthorizedError):
            await service.authenticate(session.token)
