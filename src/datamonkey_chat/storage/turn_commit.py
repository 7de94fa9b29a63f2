"""Group commit for turns: the turns that finish while a write is in flight share the next one.

A turn claims its message numbers with one `UPDATE conversations SET last_seq = last_seq + n
... RETURNING last_seq`: the row lock that UPDATE takes serializes the turns of one
conversation across server processes (the second waits for the first's commit, then numbers
its messages after the first's: no 409 in normal operation), and the number comes without a
scan. Under load, one transaction carries many turns: one UPDATE each (in conversation id
order, so two processes' batches lock rows in the same order), one executemany for all their
messages, one commit. Each caller returns only after its turn is committed. A batch that
fails is retried turn by turn, so one turn's failure is that turn's alone.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

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
            batch = [t for t in self._waiting[:MAX_TURNS_PER_TRANSACTION] if not t.done.done()]
            del self._waiting[:MAX_TURNS_PER_TRANSACTION]
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

    async def _write(self, batch: list[PendingTurn]) -> list[PendingTurn]:
        """One transaction for the batch; returns the turns whose conversation still exists."""
        stored: list[PendingTurn] = []
        async with self._database.write_connection() as connection:
            for turn in sorted(batch, key=lambda t: t.conversation_id):
                if await self._advance(connection, turn):
                    stored.append(turn)
            await repository.insert_messages(
                connection, [row for turn in stored for row in turn.messages]
            )
        return stored

    @staticmethod
    async def _advance(connection: AsyncConnection, turn: PendingTurn) -> bool:
        """Claim the turn's message numbers on its conversation (locks its row until commit)."""
        last = await repository.advance_conversation(
            connection, turn.conversation_id, len(turn.messages), turn.updated_ms
        )
        if last is None:
            return False  # deleted meanwhile
        turn.first_seq = last - len(turn.messages) + 1
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
