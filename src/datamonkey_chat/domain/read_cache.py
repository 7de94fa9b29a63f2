"""In-process snapshots of conversations and of each user's list, for fast reads.

Valid only while this process is the only writer (the SQLite default); the settings turn
it off for a database shared by several server processes. Every write forgets what it
touched, and an epoch counter stops a read that raced a write from caching stale data.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

Value = TypeVar("Value")


class _Lru(Generic[Value]):
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Value] = OrderedDict()

    def get(self, key: str) -> Value | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: Value) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        self._items.pop(key, None)


class ReadCache(Generic[Value]):
    """Two LRU maps: conversation id -> (owner, snapshot) and user id -> list snapshot."""

    def __init__(self, capacity: int) -> None:
        self.epoch = 0
        self._conversations: _Lru[tuple[str, Value]] = _Lru(capacity)
        self._lists: _Lru[list[Value]] = _Lru(capacity)

    def conversation(self, conversation_id: str) -> tuple[str, Value] | None:
        return self._conversations.get(conversation_id)

    def user_list(self, user_id: str) -> list[Value] | None:
        return self._lists.get(user_id)

    def keep_conversation(self, conversation_id: str, owner: str, value: Value, epoch: int) -> None:
        if epoch == self.epoch:  # no write happened while this snapshot was being read
            self._conversations.put(conversation_id, (owner, value))

    def keep_user_list(self, user_id: str, values: list[Value], epoch: int) -> None:
        if epoch == self.epoch:
            self._lists.put(user_id, values)

    def forget(self, user_id: str, conversation_id: str | None = None) -> None:
        self.epoch += 1
        self._lists.pop(user_id)
        if conversation_id is not None:
            self._conversations.pop(conversation_id)
