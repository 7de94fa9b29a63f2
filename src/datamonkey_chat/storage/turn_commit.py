"""Group commit for turns: the turns that finish while a write is in flight share the next one.

A turn is stored with a compare-and-set on its conversation's `last_seq` (the value read
with the history) and its two message rows. Under load, one transaction carries many turns:
one UPDATE each (in conversation id order, so two processes' batches lock rows in the same
order), one executemany for all their messages, one commit. Each caller returns only after
its turn is committed. A batch that fails is retried turn by turn, so one turn's failure
(say, a unique violation from another process's write) is that turn's alone.
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
    expected_seq: int  # the conversation's last_seq when its history was read
    updated_ms: int
    messages: list[dict[str, Any]]  # message rows, seq expected_seq + 1, + 2, ...
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TurnCommitter:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._waiting: list[PendingTurn] = []
        self._flusher: asyncio.Task[None] | None = None

    async def commit(
        self,
        conversation_id: str,
        expected_seq: int,
        updated_ms: int,
        messages: list[dict[str, Any]],
    ) -> bool:
        """Store the turn; False if the conversation is gone or got another turn since."""
        turn = PendingTurn(conversation_id, expected_seq, updated_ms, messages)
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
                        _settle(turn, stored=turn in stored)
            except BaseException as exc:
                for turn in batch:
                    _settle(turn, exc=exc)
                raise
            else:
                for turn in batch:
                    _settle(turn, stored=turn in stored)

    async def _write(self, batch: list[PendingTurn]) -> list[PendingTurn]:
        """One transaction for the batch; returns the turns whose compare-and-set held."""
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
        """The turn's claim on its conversation (per-turn locks of this transaction go here)."""
        new_seq = turn.expected_seq + len(turn.messages)
        changed = await repository.advance_conversation(
            connection, turn.conversation_id, turn.expected_seq, new_seq, turn.updated_ms
        )
        return changed == 1


def _settle(turn: PendingTurn, *, stored: bool = False, exc: BaseException | None = None) -> None:
    if turn.done.done():
        return
    if exc is not None:
        turn.done.set_exception(exc)
    else:
        turn.done.set_result(stored)
