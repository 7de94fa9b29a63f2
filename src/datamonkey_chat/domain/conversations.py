"""Conversations: ownership, ordering, and storing each exchange as one atomic turn."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from bisect import bisect_left
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from datamonkey_chat.assistant.base import (
    Assistant,
    AssistantDeps,
    AssistantReply,
    ReplyDone,
    StoredTurn,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.domain.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from datamonkey_chat.domain.ids import new_id
from datamonkey_chat.domain.locks import KeyedLocks
from datamonkey_chat.domain.paging import Cursors
from datamonkey_chat.domain.read_cache import ReadCache
from datamonkey_chat.domain.windows import HistoryWindow, HistoryWindows
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow, MessageRow
from datamonkey_chat.storage.text import scrub
from datamonkey_chat.storage.turn_commit import TurnCommitter

log = logging.getLogger(__name__)

MAX_TITLE_CHARS = 200
# For the read cache's byte budget: the fixed cost of one cached object (dataclass, ids,
# timestamps), and how much larger parsed JSON is than its text.
_ROW_BYTES = 300
_PARSED_JSON_FACTOR = 4


@dataclass(frozen=True)
class Message:
    role: str  # "user" | "assistant": the only roles the wire knows
    content: str
    timestamp: int
    seq: int
    tool_events: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Page:
    """One page, newest first among pages, chronological within; `next_cursor` for older."""

    items: list[Any]
    next_cursor: str | None


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str | None
    created: int
    updated: int
    messages: list[Message] | None = None


@dataclass(frozen=True)
class ReplyStored:
    """The last stream event: the assistant's message as stored."""

    message: Message


ConversationStreamEvent = TextDelta | ToolEvent | ReplyStored


def _conversation(row: ConversationRow, messages: list[Message] | None = None) -> Conversation:
    return Conversation(row.id, row.title, row.created_ms, row.updated_ms, messages)


def _message(row: MessageRow) -> Message:
    events = json.loads(row.tool_events) if row.tool_events else None
    return Message(row.role, row.content, row.timestamp_ms, row.seq, events)


def _message_bytes(row: MessageRow) -> int:
    """About what a cached message takes: its text, and its tool events, which take several
    times their JSON's length once parsed into dicts and lists."""
    return _ROW_BYTES + len(row.content) + _PARSED_JSON_FACTOR * len(row.tool_events or "")


def _page_message(row: Row[Any]) -> Message:
    events = json.loads(row.tool_events) if row.tool_events else None
    return Message(row.role, row.content, row.timestamp_ms, row.seq, events)


def _events_json(events: list[dict[str, Any]]) -> str:
    """Tool events as stored: orjson (several times faster on tool results), or the standard
    library's ASCII-escaped JSON for what orjson refuses (a lone surrogate from a model)."""
    try:
        return orjson.dumps(events, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(events)


def _check_found_and_owner(rows: list[Row[Any]], user_id: str) -> Row[Any]:
    """The conversation's head from `conversation_and_messages` rows, if the user owns it."""
    if not rows:
        raise NotFoundError("Conversation not found")
    _check_owner(rows[0].user_id, user_id)
    return rows[0]


def _check_owner(owner: str, user_id: str) -> None:
    if not secrets.compare_digest(owner, user_id):
        raise ForbiddenError("User does not own this conversation")


def clean_title(title: str) -> str:
    return scrub(" ".join(title.split())[:MAX_TITLE_CHARS])


class ConversationService:
    def __init__(
        self,
        database: Database,
        assistant: Assistant,
        analyses: Any = None,
        read_cache_size: int = 0,
        changes: ChangeFeed | None = None,
        read_cache_bytes: int = 0,
        *,
        secret: str = "",
        context_budget_chars: int = 48_000,
        context_max_turns: int = 200,
        reply_slots: int = 256,
        send_slots: int | None = None,
    ) -> None:
        self._database = database
        self._assistant = assistant
        self._analyses = analyses
        self._changes = changes or ChangeFeed(database)
        self._cache: ReadCache[Conversation] = ReadCache(
            read_cache_size, active=self._changes.listening, max_bytes=read_cache_bytes
        )
        self._new_conversations = GroupInserter(database, ConversationRow)
        self._turns = TurnCommitter(database)
        self._cursors = Cursors(secret or secrets.token_urlsafe(32))
        self._windows = HistoryWindows(
            database,
            budget_chars=context_budget_chars,
            max_turns=context_max_turns,
            records=assistant.replays_records,
            capacity=read_cache_size,
            max_bytes=read_cache_bytes,
            active=self._changes.listening,
        )
        # Admission for assistant runs: with a CPU-bound (offline) assistant, a few runs at a
        # time finish as fast as many, and reads are not queued behind hundreds of them.
        self._reply_slots = asyncio.Semaphore(reply_slots)
        # Admission for whole unstreamed sends: with the offline assistant a send is all CPU
        # work, and hundreds at once (each a few steps of the event loop) made every read
        # wait behind all of their steps. Waiting sends cost nothing until admitted.
        self._send_slots: AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(send_slots) if send_slots is not None else nullcontext()
        )
        self._send_locks = KeyedLocks()
        self._background: set[asyncio.Task[None]] = set()

    async def create(self, user_id: str, title: str | None) -> Conversation:
        now = now_ms()
        conversation = Conversation(
            id=new_id(),
            title=clean_title(title) if title and title.strip() else None,
            created=now,
            updated=now,
            messages=[],
        )
        await self._new_conversations.insert(
            {
                "id": conversation.id,
                "user_id": user_id,
                "title": conversation.title,
                "created_ms": now,
                "updated_ms": now,
            }
        )
        self._cache.forget(user_id)
        return conversation

    async def start(self) -> None:
        """With a read cache, follow other server processes' writes (PostgreSQL)."""
        if self._cache.capacity > 0:
            await self._changes.start(self._forget, self._set_active)

    async def list_for_user(self, user_id: str) -> list[Conversation]:
        cached = self._cache.user_list(user_id)
        if cached is not None:
            return cached
        epoch = self._cache.epoch
        async with self._database.session() as db:
            rows = await repository.list_conversations(db, user_id)
        conversations = [_conversation(row) for row in rows]
        size = sum(_ROW_BYTES + len(row.title or "") for row in rows)
        self._cache.keep_user_list(user_id, conversations, epoch, size)
        return conversations

    async def get(self, user_id: str, conversation_id: str) -> Conversation:
        cached = self._cache.conversation(conversation_id)
        if cached is not None:
            owner, conversation = cached
            _check_owner(owner, user_id)
            return conversation
        epoch = self._cache.epoch
        async with self._database.session() as db:
            row = await self._owned(db, user_id, conversation_id)
            message_rows = await repository.list_messages(db, conversation_id)
        conversation = _conversation(row, [_message(m) for m in message_rows])
        size = _ROW_BYTES + len(row.title or "") + sum(map(_message_bytes, message_rows))
        self._cache.keep_conversation(conversation_id, row.user_id, conversation, epoch, size)
        return conversation

    async def messages(self, user_id: str, conversation_id: str) -> list[Message]:
        conversation = await self.get(user_id, conversation_id)
        return conversation.messages or []

    async def message_page(
        self, user_id: str, conversation_id: str, limit: int, cursor: str | None
    ) -> Page:
        """`limit` messages older than the cursor (the newest without one), oldest first.

        A conversation in the read cache is paged from memory; otherwise one indexed query
        reads just the page (a page never fills the cache with a whole conversation).
        """
        scope = f"messages {conversation_id}"
        cached = self._cache.conversation(conversation_id)
        if cached is not None:
            owner, conversation = cached
            _check_owner(owner, user_id)
            before = self._cursors.decode(user_id, scope, cursor)[0] if cursor is not None else None
            everything = conversation.messages or []
            end = (
                len(everything)
                if before is None
                else bisect_left(everything, before, key=lambda m: m.seq)
            )
            items = everything[max(0, end - limit) : end]
            more = end > limit
        else:
            before, bad_cursor = None, None
            if cursor is not None:
                try:
                    before = self._cursors.decode(user_id, scope, cursor)[0]
                except InvalidInputError as exc:
                    bad_cursor = exc  # answered after 403/404, like the cached path
            async with self._database.read_connection() as db:
                rows = await repository.conversation_and_messages(
                    db, conversation_id, before, limit + 1
                )
            _check_found_and_owner(rows, user_id)
            if bad_cursor is not None:
                raise bad_cursor
            found = [row for row in rows if row.seq is not None]
            more = len(found) > limit
            items = [_page_message(row) for row in reversed(found[:limit])]
        next_cursor = self._cursors.encode(user_id, scope, [items[0].seq]) if more else None
        return Page(items, next_cursor)

    async def conversation_page(self, user_id: str, limit: int, cursor: str | None) -> Page:
        """`limit` conversations after the cursor (from the newest-updated without one)."""
        after: tuple[int, str] | None = None
        if cursor is not None:
            updated_ms, conversation_id = self._cursors.decode(user_id, "conversations", cursor)
            after = (int(updated_ms), str(conversation_id))
        async with self._database.read_connection() as db:
            rows = await repository.conversations_after(db, user_id, after, limit + 1)
        items = [Conversation(r.id, r.title, r.created_ms, r.updated_ms) for r in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = self._cursors.encode(user_id, "conversations", [last.updated, last.id])
        return Page(items, next_cursor)

    async def delete(self, user_id: str, conversation_id: str) -> None:
        async with self._send_locks.hold(conversation_id):
            async with self._database.transaction() as db:
                await self._owned(db, user_id, conversation_id)
                await repository.delete_conversation(db, conversation_id)
            self._forget(user_id, conversation_id)

    async def rename(self, user_id: str, conversation_id: str, title: str) -> Conversation:
        async with self._database.transaction() as db:
            await self._owned(db, user_id, conversation_id)
            await repository.set_title(db, conversation_id, clean_title(title))
        self._cache.forget(user_id, conversation_id)
        return await self.get(user_id, conversation_id)

    async def send(self, user_id: str, conversation_id: str, text: str) -> Message:
        """Ask the assistant and store question and answer together, or nothing at all."""
        received = now_ms()
        async with self._send_locks.hold(conversation_id), self._send_slots:
            window = await self._history(user_id, conversation_id)
            deps = self._deps(user_id, conversation_id, text)
            async with self._reply_slots:
                reply = await self._assistant.reply(window.turns, text, deps)
            stored = await self._store_turn(window, conversation_id, text, received, reply)
        if window.is_first:
            self._title_later(user_id, conversation_id, text, reply.text)
        return stored

    async def send_streaming(
        self, user_id: str, conversation_id: str, text: str
    ) -> AsyncIterator[ConversationStreamEvent]:
        """Like send, yielding deltas and tool events first; nothing is stored unless done."""
        received = now_ms()
        async with self._send_locks.hold(conversation_id):
            window = await self._history(user_id, conversation_id)
            deps = self._deps(user_id, conversation_id, text)
            reply: AssistantReply | None = None
            # No reply slot here: a slow reader of the stream would hold it.
            async for event in self._assistant.stream(window.turns, text, deps):
                if isinstance(event, ReplyDone):
                    reply = event.reply
                else:
                    yield event
            if reply is None:
                raise RuntimeError("assistant stream ended without a reply")
            stored = await self._store_turn(window, conversation_id, text, received, reply)
        if window.is_first:
            self._title_later(user_id, conversation_id, text, reply.text)
        yield ReplyStored(stored)

    async def check_owner(self, user_id: str, conversation_id: str) -> None:
        async with self._database.session() as db:
            await self._owned(db, user_id, conversation_id)

    async def close(self) -> None:
        """Let pending title tasks finish (briefly) at shutdown."""
        await self._changes.stop()
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        for task in self._background:
            task.cancel()

    def _forget(self, user_id: str, conversation_id: str | None = None) -> None:
        """A change not made by a turn stored here: snapshots and windows are read again."""
        self._cache.forget(user_id, conversation_id)
        self._windows.forget(user_id, conversation_id)

    def _set_active(self, active: bool) -> None:
        self._cache.set_active(active)
        self._windows.set_active(active)

    def _deps(self, user_id: str, conversation_id: str, text: str) -> AssistantDeps:
        return AssistantDeps(
            user_id=user_id,
            conversation_id=conversation_id,
            current_message=text,
            analyses=self._analyses,
        )

    async def _history(self, user_id: str, conversation_id: str) -> HistoryWindow:
        window = await self._windows.window(conversation_id)
        if window is None:
            raise NotFoundError("Conversation not found")
        _check_owner(window.owner, user_id)
        return window

    @staticmethod
    async def _owned(db: Any, user_id: str, conversation_id: str) -> ConversationRow:
        row = await repository.get_conversation(db, conversation_id)
        if row is None:
            raise NotFoundError("Conversation not found")
        _check_owner(row.user_id, user_id)
        return row

    async def _store_turn(
        self,
        window: HistoryWindow,
        conversation_id: str,
        text: str,
        received_ms: int,
        reply: AssistantReply,
    ) -> Message:
        replied = max(now_ms(), received_ms)
        sized = reply.model_chars if reply.model_messages else None
        events = [event.as_dict() for event in reply.tool_events]
        reply_text = scrub(reply.text)  # a model's text is not checked at the edge
        question = {
            "conversation_id": conversation_id,
            "seq": 0,  # numbered when the turn is committed
            "role": "user",
            "content": text,
            "timestamp_ms": received_ms,
            "tool_events": None,
            "model_messages": None,
            "model_chars": None,
        }
        answer = {
            "conversation_id": conversation_id,
            "seq": 0,
            "role": "assistant",
            "content": reply_text,
            "timestamp_ms": replied,
            "tool_events": _events_json(events) if events else None,
            "model_messages": reply.model_messages,
            "model_chars": sized,
        }
        user_id = window.owner
        committed = False
        try:
            first_seq = await self._turns.commit(conversation_id, replied, [question, answer])
            if first_seq is None:
                raise NotFoundError("Conversation not found")  # deleted mid-reply
            committed = True
        except IntegrityError as exc:
            raise ConflictError("Another message was sent to this conversation at once") from exc
        finally:
            self._cache.forget(user_id, conversation_id)
            if not committed:  # whatever happened, the next send reads the window again
                self._windows.forget(user_id, conversation_id)
        turn = StoredTurn(text, reply_text, reply.model_messages, sized)
        self._windows.stored(conversation_id, window, turn)
        return Message("assistant", reply_text, replied, first_seq + 1, events or None)

    def _title_later(self, user_id: str, conversation_id: str, text: str, reply_text: str) -> None:
        task = asyncio.create_task(self._make_title(user_id, conversation_id, text, reply_text))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _make_title(
        self, user_id: str, conversation_id: str, text: str, reply_text: str
    ) -> None:
        try:
            title = clean_title(await self._assistant.title(text, reply_text))
            if title:
                async with self._database.transaction() as db:
                    await repository.set_title(db, conversation_id, title, only_if_empty=True)
                self._cache.forget(user_id, conversation_id)
        except Exception:  # a title is a nicety: never let it break anything
            log.warning("could not title conversation %s", conversation_id, exc_info=True)
