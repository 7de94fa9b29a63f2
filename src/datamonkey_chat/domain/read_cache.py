"""In-process snapshots of conversations and of each user's list, for fast reads.

Every write forgets what it touched, in this process directly and in the others sharing a
PostgreSQL database through the change feed; an epoch counter stops a read that raced a
write from caching stale data. While the feed cannot listen, the cache is suspended: it
serves and keeps nothing, because other processes' writes would go unnoticed.
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

    def clear(self) -> None:
        self._items.clear()


class ReadCache(Generic[Value]):
    """Two LRU maps: conversation id -> (owner, snapshot) and user id -> list snapshot."""

    def __init__(self, capacity: int, active: bool = True) -> None:
        self.capacity = capacity
        self.epoch = 0
        self.active = active
        self._conversations: _Lru[tuple[str, Value]] = _Lru(capacity)
        self._lists: _Lru[list[Value]] = _Lru(capacity)

    def conversation(self, conversation_id: str) -> tuple[str, Value] | None:
        return self._conversations.get(conversation_id) if self.active else None

    def user_list(self, user_id: str) -> list[Value] | None:
        return self._lists.get(user_id) if self.active else None

    def keep_conversation(self, conversation_id: str, owner: str, value: Value, epoch: int) -> None:
        if self.active and epoch == self.epoch:  # no write while this snapshot was read
            self._conversations.put(conversation_id, (owner, value))

    def keep_user_list(self, user_id: str, values: list[Value], epoch: int) -> None:
        if self.active and epoch == self.epoch:
            self._lists.put(user_id, values)

    def set_active(self, active: bool) -> None:
        """Suspend or resume; either way, forget everything (it may have gone stale)."""
        self.active = active
        self.epoch += 1
        self._conversations.clear()
        self._lists.clear()

    def forget(self, user_id: str, conversation_id: str | None = None) -> None:
        self.epoch += 1
        self._lists.pop(user_id)
        if conversation_id is not None:
            self._conversations.pop(conversation_id)
