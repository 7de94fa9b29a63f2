"""Conversations: ownership, ordering, and storing each exchange as one atomic turn."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

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
from datamonkey_chat.domain.errors import ConflictError, ForbiddenError, NotFoundError
from datamonkey_chat.domain.locks import KeyedLocks
from datamonkey_chat.domain.read_cache import ReadCache
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.change_feed import ChangeFeed
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow, MessageRow
from datamonkey_chat.storage.text import scrub

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


def _turns(rows: list[MessageRow]) -> list[StoredTurn]:
    """Pair each user message with the assistant reply that follows it."""
    turns: list[StoredTurn] = []
    pending_user: MessageRow | None = None
    for row in rows:
        if row.role == "user":
            pending_user = row
        elif pending_user is not None:
            turns.append(StoredTurn(pending_user.content, row.content, row.model_messages))
            pending_user = None
    return turns


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
    ) -> None:
        self._database = database
        self._assistant = assistant
        self._analyses = analyses
        self._changes = changes or ChangeFeed(database)
        self._cache: ReadCache[Conversation] = ReadCache(
            read_cache_size, active=self._changes.listening, max_bytes=read_cache_bytes
        )
        self._new_conversations = GroupInserter(database, ConversationRow)
        self._send_locks = KeyedLocks()
        self._background: set[asyncio.Task[None]] = set()

    async def create(self, user_id: str, title: str | None) -> Conversation:
        now = now_ms()
        conversation = Conversation(
            id=secrets.token_urlsafe(18),
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
            await self._changes.start(self._cache.forget, self._cache.set_active)

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

    async def delete(self, user_id: str, conversation_id: str) -> None:
        async with self._send_locks.hold(conversation_id):
            async with self._database.transaction() as db:
                await self._owned(db, user_id, conversation_id)
                await repository.delete_conversation(db, conversation_id)
            self._cache.forget(user_id, conversation_id)

    async def rename(self, user_id: str, conversation_id: str, title: str) -> Conversation:
        async with self._database.transaction() as db:
            await self._owned(db, user_id, conversation_id)
            await repository.set_title(db, conversation_id, clean_title(title))
        self._cache.forget(user_id, conversation_id)
        return await self.get(user_id, conversation_id)

    async def send(self, user_id: str, conversation_id: str, text: str) -> Message:
        """Ask the assistant and store question and answer together, or nothing at all."""
        received = now_ms()
        async with self._send_locks.hold(conversation_id):
            history, is_first = await self._history(user_id, conversation_id)
            deps = self._deps(user_id, conversation_id, text)
            reply = await self._assistant.reply(history, text, deps)
            stored = await self._store_turn(user_id, conversation_id, text, received, reply)
        if is_first:
            self._title_later(user_id, conversation_id, text, reply.text)
        return stored

    async def send_streaming(
        self, user_id: str, conversation_id: str, text: str
    ) -> AsyncIterator[ConversationStreamEvent]:
        """Like send, yielding deltas and tool events first; nothing is stored unless done."""
        received = now_ms()
        async with self._send_locks.hold(conversation_id):
            history, is_first = await self._history(user_id, conversation_id)
            deps = self._deps(user_id, conversation_id, text)
            reply: AssistantReply | None = None
            async for event in self._assistant.stream(history, text, deps):
                if isinstance(event, ReplyDone):
                    reply = event.reply
                else:
                    yield event
            if reply is None:
                raise RuntimeError("assistant stream ended without a reply")
            stored = await self._store_turn(user_id, conversation_id, text, received, reply)
        if is_first:
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

    def _deps(self, user_id: str, conversation_id: str, text: str) -> AssistantDeps:
        return AssistantDeps(
            user_id=user_id,
            conversation_id=conversation_id,
            current_message=text,
            analyses=self._analyses,
        )

    async def _history(self, user_id: str, conversation_id: str) -> tuple[list[StoredTurn], bool]:
        async with self._database.session() as db:
            row = await self._owned(db, user_id, conversation_id)
            messages = await repository.list_messages(db, conversation_id)
        return _turns(messages), not messages and row.title is None

    @staticmethod
    async def _owned(db: Any, user_id: str, conversation_id: str) -> ConversationRow:
        row = await repository.get_conversation(db, conversation_id)
        if row is None:
            raise NotFoundError("Conversation not found")
        _check_owner(row.user_id, user_id)
        return row

    async def _store_turn(
        self,
        user_id: str,
        conversation_id: str,
        text: str,
        received_ms: int,
        reply: AssistantReply,
    ) -> Message:
        replied = max(now_ms(), received_ms)
        events = [event.as_dict() for event in reply.tool_events]
        try:
            async with self._database.transaction() as db:
                # other server processes' turns to this conversation: wait, then follow them
                await repository.lock_conversation_for_turn(db, conversation_id)
                seq = await repository.next_message_seq(db, conversation_id)
                question = MessageRow(
                    conversation_id=conversation_id,
                    seq=seq,
                    role="user",
                    content=text,
                    timestamp_ms=received_ms,
                )
                answer = MessageRow(
                    conversation_id=conversation_id,
                    seq=seq + 1,
                    role="assistant",
                    content=scrub(reply.text),  # a model's text is not checked at the edge
                    timestamp_ms=replied,
                    tool_events=json.dumps(events) if events else None,
                    model_messages=reply.model_messages,
                )
                if await repository.set_conversation_updated(db, conversation_id, replied) == 0:
                    raise NotFoundError("Conversation not found")  # deleted mid-reply
                await repository.add_messages(db, [question, answer])
        except IntegrityError as exc:
            # Another server process wrote to this conversation at the same moment.
            raise ConflictError("Another message was sent to this conversation at once") from exc
        finally:
            self._cache.forget(user_id, conversation_id)
        return _message(answer)

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
