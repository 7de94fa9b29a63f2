import asyncio

from sqlalchemy import event, func, select

from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow
from tests.unit.test_change_feed import closed_port


def conversation(number: int) -> dict[str, object]:
    return {
        "id": f"c{number}",
        "user_id": "u",
        "title": None,
        "created_ms": number,
        "updated_ms": number,
    }


async def test_concurrent_inserts_share_transactions_and_all_commit(database):
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    inserter = GroupInserter(database, ConversationRow)
    await asyncio.gather(*(inserter.insert(conversation(n)) for n in range(50)))
    async with database.session() as db:
        assert await db.scalar(select(func.count()).select_from(ConversationRow)) == 50
    assert 1 <= len(commits) < 50


async def test_a_row_the_database_refuses_fails_alone(database):
    inserter = GroupInserter(database, ConversationRow)
    await inserter.insert(conversation(1))
    bad_title = {**conversation(40), "title": "\ud800"}  # SQLite cannot encode it
    results = await asyncio.gather(
        *(inserter.insert(conversation(n)) for n in range(2, 40)),
        inserter.insert(conversation(1)),  # duplicate primary key
        inserter.insert(bad_title),
        *(inserter.insert(conversation(n)) for n in range(41, 80)),
        return_exceptions=True,
    )
    failed = [i for i, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == [38, 39]  # the duplicate and the bad title, nobody else
    async with database.session() as db:
        stored = set(await db.scalars(select(ConversationRow.id)))
    assert stored == {f"c{n}" for n in range(1, 80) if n != 40}
    await inserter.insert(conversation(80))  # the inserter keeps working afterwards


async def test_an_unreachable_database_fails_the_batch_once_not_row_by_row(tmp_path):
    database = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port()}/none")
    attempts = []
    real_write_connection = database.write_connection

    def counting_write_connection():  # a test double around the real one
        attempts.append(1)
        return real_write_connection()

    database.write_connection = counting_write_connection  # type: ignore[method-assign]
    try:
        inserter = GroupInserter(database, ConversationRow)
        results = await asyncio.gather(
            *(inserter.insert(conversation(n)) for n in range(8)), return_exceptions=True
        )
        assert all(isinstance(result, Exception) for result in results)
        assert len(attempts) == 1  # not bisected: the rows are not what failed
    finally:
        await database.dispose()


async def test_a_caller_that_goes_away_does_not_stop_the_batch(database):
    inserter = GroupInserter(database, ConversationRow)
    leaving = asyncio.create_task(inserter.insert(conversation(1)))
    staying = [asyncio.create_task(inserter.insert(conversation(n))) for n in range(2, 6)]
    await asyncio.sleep(0)  # all five are waiting on the same batch
    leaving.cancel()
    await asyncio.gather(*staying)
    async with database.session() as db:
        # the departed caller's row was already in the batch: it is stored with the rest
        assert await db.scalar(select(func.count()).select_from(ConversationRow)) == 5
    assert leaving.cancelled()


async def test_inserts_arriving_in_the_flushers_turn_join_its_first_batch(database):
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    inserter = GroupInserter(database, ConversationRow)
    first = asyncio.create_task(inserter.insert(conversation(1)))
    await asyncio.sleep(0)  # the first insert is waiting and has scheduled the flusher
    rest = [asyncio.create_task(inserter.insert(conversation(n))) for n in range(2, 11)]
    await asyncio.gather(first, *rest)
    assert len(commits) == 1  # not the first row alone, then the other nine
