"""Group commit for turns: the turns that finish while a write is in flight share the next one.

A turn claims its message numbers with one `UPDATE conversations SET last_seq = last_seq + n
... RETURNING last_seq`: the row lock that UPDATE takes serializes the turns of one
conversation across server processes (the second waits for the first's commit, then numbers
its messages after the first's: no 409 in normal operation), and the number comes without a
scan. Under load, one transaction carries many turns, in a fixed number of statements
whatever their count: one UPDATE for all their conversations (a turn per conversation in a
batch), one executemany for all their messages, one commit. (With SQLite every statement is
several hops to the driver's thread and back through a busy event loop, and the batch holds
the one writer's lock meanwhile: a statement per turn made the batch's length, and so every
send's wait, grow with the load.) Each caller returns only after its turn is committed. A
batch that fails (PostgreSQL may end one of two processes' batches that lock the same
conversations as a deadlock) is retried turn by turn, so one turn's failure is that turn's
alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database

MAX_TURNS_PER_TRANSACTION = 128


@dataclass
class PendingTurn:
    conversation_id: str
    updated_ms: int
    messages: list[dict[str, Any]]  # message rows in order; their `seq` is set when claimed
    first_seq: int | None = None
    done: asyncio.Future[int | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TurnCommitter:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._waiting: list[PendingTurn] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(
        self, conversation_id: str, updated_ms: int, messages: list[dict[str, Any]]
    ) -> int | None:
        """Store the turn; the seq of its first message, or None if the conversation is gone."""
        turn = PendingTurn(conversation_id, updated_ms, messages)
        self._waiting.append(turn)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # The batch runs in the flusher task: a caller that goes away (its client disconnected)
        # cancels only its own future, and a turn cancelled before its batch is not written.
        return await turn.done

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the turns finishing in this turn of the loop join
        while self._waiting:
            batch = self._next_batch()
            if not batch:
                continue
            try:
                stored = await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc=exc)
                    continue
                for turn in batch:  # isolate the failure: each turn in its own transaction
                    try:
                        stored = await self._write([turn])
                    except Exception as single_exc:
                        _settle(turn, exc=single_exc)
                    else:
                        _settle(turn, stored=stored)
            except BaseException as exc:
                for turn in batch:
                    _settle(turn, exc=exc)
                raise
            else:
                for turn in batch:
                    _settle(turn, stored=stored)

    def _next_batch(self) -> list[PendingTurn]:
        """The waiting turns still wanted, oldest first, at most one per conversation (a
        later turn of the same conversation waits for the next batch) and per transaction."""
        batch: list[PendingTurn] = []
        later: list[PendingTurn] = []
        conversations: set[str] = set()
        for turn in self._waiting:
            if turn.done.done():
                continue  # its caller went away
            if turn.conversation_id in conversations or len(batch) >= MAX_TURNS_PER_TRANSACTION:
                later.append(turn)
            else:
                conversations.add(turn.conversation_id)
                batch.append(turn)
        self._waiting = later
        return batch

    async def _write(self, batch: list[PendingTurn]) -> list[PendingTurn]:
        """One transaction for the batch; returns the turns whose conversation still exists."""
        async with self._database.write_connection() as connection:
            last_seqs = await repository.advance_conversations(
                connection,
                [(t.conversation_id, len(t.messages), t.updated_ms) for t in batch],
            )
            stored = [turn for turn in batch if _number(turn, last_seqs.get(turn.conversation_id))]
            await repository.insert_messages(
                connection, [row for turn in stored for row in turn.messages]
            )
        return stored


def _number(turn: PendingTurn, last_seq: int | None) -> bool:
    """Number the turn's messages up to its conversation's new `last_seq`; False if the
    conversation is gone (deleted meanwhile)."""
    if last_seq is None:
        return False
    turn.first_seq = last_seq - len(turn.messages) + 1
    for offset, row in enumerate(turn.messages):
        row["seq"] = turn.first_seq + offset
    return True


def _settle(
    turn: PendingTurn,
    *,
    stored: list[PendingTurn] | None = None,
    exc: BaseException | None = None,
) -> None:
    if turn.done.done():
        return
    if exc is not None:
        turn.done.set_exception(exc)
    else:
        turn.done.set_result(turn.first_seq if stored and turn in stored else None)
