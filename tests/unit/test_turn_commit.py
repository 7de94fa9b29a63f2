"""Group commit of turns (storage/turn_commit.py) on a real SQLite database."""

import asyncio

from sqlalchemy import event, func, select

from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow, MessageRow
from datamonkey_chat.storage.turn_commit import TurnCommitter


def conversation(number: int) -> dict[str, object]:
    return {"id": f"c{number}", "user_id": "u", "title": None, "created_ms": 1, "updated_ms": 1}


def messages(conversation_id: str, after: int) -> list[dict[str, object]]:
    return [
        {
            "conversation_id": conversation_id,
            "seq": after + offset,
            "role": role,
            "content": f"{role} {after + offset}",
            "timestamp_ms": 5,
            "tool_events": None,
            "model_messages": None,
        }
        for offset, role in ((1, "user"), (2, "assistant"))
    ]


async def stored(database) -> dict[str, list[int]]:
    async with database.session() as db:
        rows = (await db.execute(select(MessageRow.conversation_id, MessageRow.seq))).all()
    found: dict[str, list[int]] = {}
    for conversation_id, seq in rows:
        found.setdefault(conversation_id, []).append(seq)
    return {k: sorted(v) for k, v in found.items()}


async def last_seq(database, conversation_id: str) -> int:
    async with database.session() as db:
        row = await db.get(ConversationRow, conversation_id)
        return row.last_seq


async def test_turns_finishing_together_share_a_transaction(database):
    inserter = GroupInserter(database, ConversationRow)
    for n in range(20):
        await inserter.insert(conversation(n))
    commits = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    committer = TurnCommitter(database)
    results = await asyncio.gather(
        *(committer.commit(f"c{n}", 9, messages(f"c{n}", 0)) for n in range(20))
    )
    assert results == [1] * 20  # each turn's first message number
    assert 1 <= len(commits) < 20
    assert await stored(database) == {f"c{n}": [1, 2] for n in range(20)}
    assert await last_seq(database, "c7") == 2
    async with database.session() as db:
        assert (await db.get(ConversationRow, "c7")).updated_ms == 9


async def test_concurrent_turns_of_one_conversation_are_numbered_in_turn(database):
    """Two turns that read the same history (as two server processes may) are both stored,
    the second numbered after the first: no 409, no collision; a deleted conversation: None."""
    inserter = GroupInserter(database, ConversationRow)
    for n in range(3):
        await inserter.insert(conversation(n))
    committer = TurnCommitter(database)
    assert await committer.commit("c0", 9, messages("c0", 0)) == 1
    results = await asyncio.gather(
        committer.commit("c0", 9, messages("c0", 0)),  # read its history before the first
        committer.commit("c1", 9, messages("c1", 0)),
        committer.commit("gone", 9, messages("gone", 0)),  # no such conversation
        committer.commit("c2", 9, messages("c2", 0)),
    )
    assert results == [3, 1, None, 1]
    assert await stored(database) == {"c0": [1, 2, 3, 4], "c1": [1, 2], "c2": [1, 2]}
    assert await last_seq(database, "c0") == 4


async def test_a_failing_turn_fails_alone(database):
    inserter = GroupInserter(database, ConversationRow)
    for n in range(3):
        await inserter.insert(conversation(n))
    committer = TurnCommitter(database)
    broken = messages("c1", 0)
    broken[1]["role"] = None  # NOT NULL: the database refuses the batch
    results = await asyncio.gather(
        committer.commit("c0", 9, messages("c0", 0)),
        committer.commit("c1", 9, broken),
        committer.commit("c2", 9, messages("c2", 0)),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], Exception)
    assert await stored(database) == {"c0": [1, 2], "c2": [1, 2]}
    assert await last_seq(database, "c1") == 0  # nothing of the failed turn stayed
    async with database.session() as db:
        assert await db.scalar(select(func.count()).select_from(MessageRow)) == 4


async def test_a_batch_costs_the_same_statements_whatever_its_size(database):
    """One UPDATE for every conversation of the batch and one INSERT for every message: with
    SQLite each statement is hops through the event loop while the writer's lock is held."""
    inserter = GroupInserter(database, ConversationRow)
    for n in range(40):
        await inserter.insert(conversation(n))
    statements: list[str] = []
    event.listen(
        database.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement.split()[0]),
    )
    committer = TurnCommitter(database)
    results = await asyncio.gather(
        *(committer.commit(f"c{n}", 100 + n, messages(f"c{n}", 0)) for n in range(40))
    )
    assert results == [1] * 40
    assert statements == ["UPDATE", "INSERT"]
    async with database.session() as db:  # each conversation got its own turn's time
        times = dict(
            (await db.execute(select(ConversationRow.id, ConversationRow.updated_ms))).all()
        )
    assert times == {f"c{n}": 100 + n for n in range(40)}


async def test_two_turns_of_one_conversation_waiting_together_are_both_stored(database):
    """A conversation's second waiting turn goes in the next batch, numbered after the first."""
    inserter = GroupInserter(database, ConversationRow)
    await inserter.insert(conversation(0))
    await inserter.insert(conversation(1))
    committer = TurnCommitter(database)
    results = await asyncio.gather(
        committer.commit("c0", 9, messages("c0", 0)),
        committer.commit("c0", 10, messages("c0", 0)),
        committer.commit("c1", 9, messages("c1", 0)),
    )
    assert results == [1, 3, 1]
    assert await stored(database) == {"c0": [1, 2, 3, 4], "c1": [1, 2]}
    assert await last_seq(database, "c0") == 4
