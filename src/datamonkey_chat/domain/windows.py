"""History windows: each conversation's newest turns for the model, as a send needs them.

A send reads the turns that can fill the context budget, newest first, in batches: the cost
follows the budget, not the conversation's length. A window read once is then kept in
memory and brought up to date by each turn this process stores, so the next send of the
conversation reads nothing (with SQLite every statement is several hops to the driver's
thread and back through a busy event loop: the read was most of a send's wait). The
window always holds the newest turns up to the one that crosses the budget (or
`max_turns`), which is what the assistant trims from: replies are the same whether the
window came from the database or from memory.

Kept windows are forgotten like the read cache's snapshots (domain/read_cache.py): by every
write that is not a turn stored here (delete, rename, titles), by other server processes'
writes heard through the change feed, and all at once while the feed cannot listen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from datamonkey_chat.assistant.base import StoredTurn
from datamonkey_chat.domain.read_cache import ReadCache
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database

# History is read newest first in batches of this many turns until the budget is covered.
HISTORY_BATCH_TURNS = 16
# For the cache's byte budget: the fixed cost of a window and of each turn in it.
_WINDOW_BYTES = 300
_TURN_BYTES = 200


@dataclass(frozen=True)
class HistoryWindow:
    """What a send needs before the model runs: the conversation's owner, its newest turns
    (oldest first) and whether none was stored yet (the first reply titles it)."""

    owner: str
    turns: list[StoredTurn]
    is_first: bool
    epoch: int = 0  # the cache's epoch when the window was taken (see HistoryWindows.stored)


def budget_chars(turn: StoredTurn) -> int:
    """What a turn costs in the context budget (assistant/history.py): its stored size, or a
    lower bound (the prompt and the reply's text parts, without their separators)."""
    if turn.model_chars is not None:
        return turn.model_chars
    return len(turn.user_text) + len(turn.reply_text) - 2 * turn.reply_text.count("\n\n")


def _window_bytes(turns: list[StoredTurn]) -> int:
    return _WINDOW_BYTES + sum(
        _TURN_BYTES + len(t.user_text) + len(t.reply_text) + len(t.model_messages or "")
        for t in turns
    )


class HistoryWindows:
    def __init__(
        self,
        database: Database,
        *,
        budget_chars: int,
        max_turns: int,
        records: bool,
        capacity: int,
        max_bytes: int,
        active: bool = True,
    ) -> None:
        self._database = database
        self._budget_chars = budget_chars
        self._max_turns = max_turns
        # Whether turns come with their records (the model's JSON of each, several KB with
        # tool results): only for an assistant that replays them.
        self._records = records
        self._kept: ReadCache[HistoryWindow] = ReadCache(capacity, active, max_bytes)

    async def window(self, conversation_id: str) -> HistoryWindow | None:
        """The conversation's window, kept or read; None if there is no such conversation."""
        kept = self._kept.conversation(conversation_id)
        if kept is not None:
            return kept[1]
        epoch = self._kept.epoch
        window = await self._read(conversation_id, epoch)
        if window is not None:
            self._kept.keep_conversation(
                conversation_id, window.owner, window, epoch, _window_bytes(window.turns)
            )
        return window

    def stored(self, conversation_id: str, window: HistoryWindow, turn: StoredTurn) -> None:
        """`turn` was committed after `window`: keep the window with it, unless something
        was forgotten since the window was taken (then it is read again next time). The
        caller holds the conversation's send lock: no other turn of this process is being
        stored for it meanwhile."""
        if not self._records:  # kept as a read would give it: without its record
            turn = dataclasses.replace(turn, model_messages=None)
        turns = self._trimmed([*window.turns, turn])
        newer = HistoryWindow(window.owner, turns, is_first=False, epoch=window.epoch)
        self._kept.replace_conversation(
            conversation_id, window.owner, newer, window.epoch, _window_bytes(turns)
        )

    def forget(self, user_id: str, conversation_id: str | None = None) -> None:
        self._kept.forget(user_id, conversation_id)

    def set_active(self, active: bool) -> None:
        self._kept.set_active(active)

    def _trimmed(self, turns: list[StoredTurn]) -> list[StoredTurn]:
        """The newest turns up to the one that crosses the budget, at most `max_turns`: the
        turns a read from the database would give (or more), never fewer."""
        turns = turns[-self._max_turns :]
        used = sum(budget_chars(turn) for turn in turns)
        start = 0
        while start < len(turns) - 1 and used - budget_chars(turns[start]) > self._budget_chars:
            used -= budget_chars(turns[start])
            start += 1
        return turns[start:]

    async def _read(self, conversation_id: str, epoch: int) -> HistoryWindow | None:
        batch = 2 * HISTORY_BATCH_TURNS
        records = self._records
        async with self._database.read_connection() as db:
            # The conversation and its newest messages in one statement; more batches only
            # while the budget is not covered.
            rows = await repository.conversation_and_messages(
                db, conversation_id, None, batch, for_model=True, records=records
            )
            if not rows:
                return None
            head = rows[0]
            rows = [row for row in rows if row.seq is not None]
            turns: list[tuple[int, StoredTurn]] = []  # with the reply's seq
            used = 0
            reply: Row[Any] | None = None
            while True:
                for row in rows:  # newest first: each reply, then the question before it
                    if row.role == "assistant":
                        reply = row
                    elif reply is not None:
                        record = reply.model_messages if records else None
                        turn = StoredTurn(row.content, reply.content, record, reply.model_chars)
                        turns.append((reply.seq, turn))
                        used += budget_chars(turn)
                        reply = None
                done = used > self._budget_chars
                if done or len(turns) >= self._max_turns or len(rows) < batch:
                    break
                rows = await repository.messages_before(
                    db, conversation_id, rows[-1].seq, batch, for_model=True, records=records
                )
            turns = turns[: self._max_turns]
            if not records:
                turns = await self._with_unsized_records(db, conversation_id, turns)
        return HistoryWindow(
            head.user_id,
            [turn for _, turn in reversed(turns)],
            is_first=head.last_seq == 0 and head.title is None,
            epoch=epoch,
        )

    @staticmethod
    async def _with_unsized_records(
        db: Any, conversation_id: str, turns: list[tuple[int, StoredTurn]]
    ) -> list[tuple[int, StoredTurn]]:
        """Turns stored before their size was: their records, to be measured from."""
        unsized = [seq for seq, turn in turns if turn.model_chars is None]
        if not unsized:
            return turns
        found = await repository.message_records(db, conversation_id, unsized)
        return [
            (seq, dataclasses.replace(turn, model_messages=found.get(seq)))
            if turn.model_chars is None
            else (seq, turn)
            for seq, turn in turns
        ]
