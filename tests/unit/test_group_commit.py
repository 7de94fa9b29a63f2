import asyncio

from sqlalchemy import event, func, select

from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow


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


async def test_a_failed_batch_fails_every_caller_in_it(database):
    inserter = GroupInserter(database, ConversationRow)
    await inserter.insert(conversation(1))
    results = await asyncio.gather(
        inserter.insert(conversation(1)),  # duplicate primary key: the batch fails
        inserter.insert(conversation(2)),
        return_exceptions=True,
    )
    assert all(isinstance(r, Exception) for r in results)
    async with database.session() as db:
        assert await db.scalar(select(func.count()).select_from(ConversationRow)) == 1
    await inserter.insert(conversation(3))  # the inserter keeps working afterwards


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
