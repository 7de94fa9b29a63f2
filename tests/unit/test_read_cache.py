from datamonkey_chat.assistant import build_assistant
from datamonkey_chat.domain.conversations import ConversationService
from datamonkey_chat.domain.read_cache import ReadCache
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.models import MessageRow


def test_snapshot_read_before_a_write_is_not_kept():
    cache: ReadCache[str] = ReadCache(capacity=10)
    epoch = cache.epoch  # a reader starts loading "c1"
    cache.forget("alice", "c1")  # a write to c1 commits meanwhile
    cache.keep_conversation("c1", "alice", "stale", epoch)
    cache.keep_user_list("alice", ["stale"], epoch)
    assert cache.conversation("c1") is None
    assert cache.user_list("alice") is None


def test_kept_snapshots_are_served_until_forgotten():
    cache: ReadCache[str] = ReadCache(capacity=10)
    cache.keep_conversation("c1", "alice", "v1", cache.epoch)
    cache.keep_user_list("alice", ["v1"], cache.epoch)
    assert cache.conversation("c1") == ("alice", "v1")
    assert cache.user_list("alice") == ["v1"]
    cache.forget("alice")  # e.g. a new conversation: the list changes, c1 does not
    assert cache.user_list("alice") is None
    assert cache.conversation("c1") == ("alice", "v1")


def test_capacity_evicts_least_recently_used_and_zero_disables():
    cache: ReadCache[str] = ReadCache(capacity=2)
    for key in ["a", "b"]:
        cache.keep_conversation(key, "u", key, cache.epoch)
    cache.conversation("a")  # touch a, so b is the oldest
    cache.keep_conversation("c", "u", "c", cache.epoch)
    assert cache.conversation("b") is None
    assert cache.conversation("a") is not None and cache.conversation("c") is not None
    off: ReadCache[str] = ReadCache(capacity=0)
    off.keep_conversation("a", "u", "a", off.epoch)
    assert off.conversation("a") is None


def test_suspended_cache_serves_and_keeps_nothing_and_resumes_empty():
    cache: ReadCache[str] = ReadCache(capacity=10)
    cache.keep_conversation("c1", "alice", "v1", cache.epoch)
    epoch = cache.epoch  # a read in flight when the change feed drops
    cache.set_active(False)
    assert cache.conversation("c1") is None
    cache.keep_conversation("c2", "alice", "v2", cache.epoch)
    assert cache.conversation("c2") is None
    cache.set_active(True)
    assert cache.conversation("c1") is None  # what it held before may have gone stale
    cache.keep_conversation("c3", "alice", "v3", epoch)  # read started before the drop
    assert cache.conversation("c3") is None
    cache.keep_conversation("c3", "alice", "v3", cache.epoch)
    assert cache.conversation("c3") == ("alice", "v3")


def test_the_byte_budget_evicts_least_recently_used_across_both_maps():
    cache: ReadCache[str] = ReadCache(capacity=100, max_bytes=1000)
    cache.keep_conversation("a", "u", "a", cache.epoch, size=400)
    cache.keep_user_list("u", ["a"], cache.epoch, size=300)
    cache.keep_conversation("b", "u", "b", cache.epoch, size=300)
    assert cache.bytes_used == 1000
    cache.conversation("a")  # touch a, so b is the oldest conversation
    cache.keep_conversation("c", "u", "c", cache.epoch, size=200)
    assert cache.conversation("b") is None  # evicted for c, though the count was fine
    assert cache.conversation("a") is not None and cache.conversation("c") is not None
    assert cache.bytes_used == 900
    cache.keep_user_list("v", ["c"], cache.epoch, size=500)  # the lists map grows past it
    assert cache.user_list("u") is None and cache.user_list("v") == ["c"]
    assert cache.bytes_used <= 1000


def test_an_entry_larger_than_the_budget_is_not_kept_and_sizes_are_returned():
    cache: ReadCache[str] = ReadCache(capacity=10, max_bytes=1000)
    cache.keep_conversation("small", "u", "s", cache.epoch, size=100)
    cache.keep_conversation("huge", "u", "h", cache.epoch, size=5000)
    assert cache.conversation("huge") is None
    assert cache.conversation("small") == ("u", "s")  # not pushed out by what did not fit
    cache.forget("u", "small")
    cache.set_active(False)
    assert cache.bytes_used == 0


async def test_a_conversation_larger_than_the_byte_budget_is_read_from_the_database(database):
    """Rows changed behind the cache's back show whether a read was served from memory."""

    service = ConversationService(
        database,
        build_assistant(Settings(model=None)),
        read_cache_size=100,
        read_cache_bytes=20_000,
    )
    small = await service.create("alice", "small")
    large = await service.create("alice", "large")
    async with database.transaction() as db:
        db.add(MessageRow(conversation_id=large.id, seq=1, role="user", content="x" * 50_000,
                          timestamp_ms=1))  # fmt: skip
    for conversation in (small, large):
        await service.get("alice", conversation.id)  # a first read: kept if it fits
    async with database.transaction() as db:  # not through the service: nobody is told
        for conversation in (small, large):
            db.add(MessageRow(conversation_id=conversation.id, seq=2, role="user",
                              content="later", timestamp_ms=2))  # fmt: skip
    assert len((await service.get("alice", small.id)).messages or []) == 0  # from memory
    assert len((await service.get("alice", large.id)).messages or []) == 2  # too large to keep
    await service.close()
