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

UNBOUNDED = 0  # a byte budget of 0: bounded by count only


class _Budget:
    """Bytes held by both maps together, against one limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.maps: list[_Lru[object]] = []

    def fits(self, size: int) -> bool:
        return self.limit == UNBOUNDED or size <= self.limit

    def make_room(self, growing: _Lru[object]) -> None:
        """Evict least recently used entries, the growing map's first, until within limit."""
        if self.limit == UNBOUNDED:
            return
        while self.used > self.limit:
            victim = growing if len(growing) > 1 else next(m for m in self.maps if len(m))
            victim.evict_oldest()


class _Lru(Generic[Value]):
    def __init__(self, capacity: int, budget: _Budget) -> None:
        self.capacity = capacity
        self._budget = budget
        self._items: OrderedDict[str, tuple[Value, int]] = OrderedDict()  # value, bytes
        budget.maps.append(self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Value | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: str, value: Value, size: int) -> None:
        self.pop(key)
        if self.capacity <= 0 or not self._budget.fits(size):
            return  # larger than the whole budget: served from the database each time
        self._items[key] = (value, size)
        self._budget.used += size
        while len(self._items) > self.capacity:
            self.evict_oldest()
        self._budget.make_room(self)  # type: ignore[arg-type]

    def evict_oldest(self) -> None:
        _, (_, size) = self._items.popitem(last=False)
        self._budget.used -= size

    def pop(self, key: str) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._budget.used -= item[1]

    def clear(self) -> None:
        for _, size in self._items.values():
            self._budget.used -= size
        self._items.clear()


class ReadCache(Generic[Value]):
    """Two LRU maps: conversation id -> (owner, snapshot) and user id -> list snapshot.

    Each map holds at most `capacity` entries, and both together at most `max_bytes` of
    the sizes their callers estimate (0: no byte limit), so a few huge conversations
    cannot take the memory that thousands of ordinary ones would.
    """

    def __init__(self, capacity: int, active: bool = True, max_bytes: int = UNBOUNDED) -> None:
        self.capacity = capacity
        self.epoch = 0
        self.active = active
        self._budget = _Budget(max_bytes)
        self._conversations: _Lru[tuple[str, Value]] = _Lru(capacity, self._budget)
        self._lists: _Lru[list[Value]] = _Lru(capacity, self._budget)

    @property
    def bytes_used(self) -> int:
        return self._budget.used

    def conversation(self, conversation_id: str) -> tuple[str, Value] | None:
        return self._conversations.get(conversation_id) if self.active else None

    def user_list(self, user_id: str) -> list[Value] | None:
        return self._lists.get(user_id) if self.active else None

    def keep_conversation(
        self, conversation_id: str, owner: str, value: Value, epoch: int, size: int = 0
    ) -> None:
        if self.active and epoch == self.epoch:  # no write while this snapshot was read
            self._conversations.put(conversation_id, (owner, value), size)

    def keep_user_list(self, user_id: str, values: list[Value], epoch: int, size: int = 0) -> None:
        if self.active and epoch == self.epoch:
            self._lists.put(user_id, values, size)

    def replace_conversation(
        self, conversation_id: str, owner: str, value: Value, epoch: int, size: int = 0
    ) -> None:
        """Keep `value`, which the caller made from a snapshot taken at `epoch` and its own
        write since, in place of that snapshot; if anything was forgotten since, forget it."""
        if self.active and epoch == self.epoch:
            self._conversations.put(conversation_id, (owner, value), size)
        else:
            self._conversations.pop(conversation_id)

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
