import asyncio

import pytest

from datamonkey_chat.domain.errors import UnauthorizedError
from datamonkey_chat.domain.sessions import SessionService
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database
from tests.unit.test_change_feed import closed_port


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


async def test_an_ended_session_is_refused_at_once_though_its_check_was_recent(database):
    service = SessionService(database, "s" * 64, ttl_seconds=3600)
    await service.start()
    session = await service.create()
    other = await service.create()
    assert await service.authenticate(session.token) == session.user_id  # checked: cached
    await service.end(session.user_id)
    with pytest.raises(UnauthorizedError):
        await service.authenticate(session.token)
    assert await service.authenticate(other.token) == other.user_id
    await service.close()


async def test_while_ended_sessions_cannot_be_heard_every_request_checks_the_row(database):
    # The feed of a PostgreSQL that cannot be reached: ended sessions would go unheard.
    unreachable = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port()}/none")
    service = SessionService(database, "s" * 64, ttl_seconds=3600, changes=ChangeFeed(unreachable))
    try:
        await service.start()
        session = await service.create()
        assert await service.authenticate(session.token) == session.user_id
        async with database.transaction() as db:  # ended by another process, unheard
            await repository.delete_session(db, session.user_id)
        with pytest.raises(UnauthorizedError):
            await service.authenticate(session.token)
    finally:
        await service.close()
        await unreachable.dispose()
