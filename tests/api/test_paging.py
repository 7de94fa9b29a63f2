"""Paging of messages and conversations (an extension of the contract's list operations),
on SQLite and PostgreSQL, with the offline assistant."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.api.test_chat_api import auth, new_session

CONTRACT_MESSAGE_KEYS = {"role", "content", "timestamp", "tool_events"}
CONTRACT_CONVERSATION_KEYS = {"id", "title", "created", "updated", "messages"}


async def send(client: httpx.AsyncClient, token: str, conversation_id: str, text: str) -> None:
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": text}
    )
    assert response.status_code == 200, response.text


async def conversation_with_turns(client: httpx.AsyncClient, turns: int) -> tuple[str, str]:
    token, conversation_id = await new_session(client)
    for i in range(turns):
        await send(client, token, conversation_id, f"what is FEL? ({i})")
    return token, conversation_id


async def walk(
    client: httpx.AsyncClient, path: str, token: str, key: str, limit: int, **extra: str
) -> list[dict[str, Any]]:
    """Every page from the newest; returns the pages' bodies in the order fetched."""
    pages = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **extra}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(path, headers=auth(token), params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {key, "next_cursor"}
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "paging does not end"


async def test_message_pages_are_newest_first_and_cover_everything_once(client):
    token, conversation_id = await conversation_with_turns(client, 7)
    path = f"/chat/{conversation_id}/messages"
    # Pages read from the database, then (after a whole read put the conversation in the
    # read cache) from memory: the same pages.
    from_database = await walk(client, path, token, "messages", limit=4, tool_payloads="full")
    whole = (await client.get(path, headers=auth(token))).json()["messages"]
    assert len(whole) == 14

    pages = await walk(client, path, token, "messages", limit=4, tool_payloads="full")
    assert [p["messages"] for p in pages] == [p["messages"] for p in from_database]
    assert [len(p["messages"]) for p in pages] == [4, 4, 4, 2]
    for page in pages:  # chronological within a page
        ids = [m["id"] for m in page["messages"]]
        assert ids == sorted(ids)
    # newest page first: every page is older than the one before it
    for newer, older in zip(pages, pages[1:], strict=False):
        assert older["messages"][-1]["id"] < newer["messages"][0]["id"]
    together = [m for page in reversed(pages) for m in page["messages"]]
    assert [m["id"] for m in together] == list(range(1, 15))  # no gap, no repeat
    without_ids = [{k: v for k, v in m.items() if k != "id"} for m in together]
    assert without_ids == whole


async def test_a_page_as_large_as_the_rest_ends_the_walk(client):
    token, conversation_id = await conversation_with_turns(client, 2)
    path = f"/chat/{conversation_id}/messages"
    for _ in ("database", "read cache"):
        body = (await client.get(path, headers=auth(token), params={"limit": 4})).json()
        assert [m["id"] for m in body["messages"]] == [1, 2, 3, 4]
        assert body["next_cursor"] is None
        await client.get(path, headers=auth(token))  # the whole conversation, now cached
    empty_token, empty = await new_session(client)
    body = (
        await client.get(f"/chat/{empty}/messages", headers=auth(empty_token), params={"limit": 5})
    ).json()
    assert body == {"messages": [], "next_cursor": None}


async def test_unpaged_answers_are_the_contracts(client):
    token, conversation_id = await conversation_with_turns(client, 2)
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))).json()
    assert set(messages) == {"messages"}
    for message in messages["messages"]:
        assert set(message) <= CONTRACT_MESSAGE_KEYS
    listed = (await client.get("/chat", headers=auth(token))).json()
    assert set(listed) == {"conversations"}
    for conversation in listed["conversations"]:
        assert set(conversation) <= CONTRACT_CONVERSATION_KEYS
    got = (await client.get(f"/chat/{conversation_id}", headers=auth(token))).json()
    assert got["messages"] == messages["messages"]


async def test_conversation_pages_follow_the_newest_updated_order(client):
    token, _ = await new_session(client)
    for i in range(6):  # titled, so no title arrives in the background
        created = await client.post("/chat", headers=auth(token), json={"title": f"c{i}"})
        assert created.status_code == 201
    listed = (await client.get("/chat", headers=auth(token))).json()["conversations"]
    assert listed[4]["title"]
    await send(client, token, listed[4]["id"], "hello")  # moves it to the top
    whole = (await client.get("/chat", headers=auth(token))).json()["conversations"]
    assert whole[0]["id"] == listed[4]["id"] and len(whole) == 7

    pages = await walk(client, "/chat", token, "conversations", limit=3)
    assert [len(p["conversations"]) for p in pages] == [3, 3, 1]
    assert [c for page in pages for c in page["conversations"]] == whole


async def test_bad_limits_and_cursors_are_400(client):
    token, conversation_id = await conversation_with_turns(client, 3)
    _, other_conversation = token, (await client.post("/chat", headers=auth(token))).json()["id"]
    path = f"/chat/{conversation_id}/messages"
    first = (await client.get(path, headers=auth(token), params={"limit": 2})).json()
    cursor = first["next_cursor"]
    list_cursor = (await client.get("/chat", headers=auth(token), params={"limit": 1})).json()[
        "next_cursor"
    ]
    assert cursor and list_cursor
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    bad = [
        (path, {"limit": "0"}),
        (path, {"limit": "201"}),
        (path, {"limit": "-1"}),
        (path, {"limit": "ten"}),
        (path, {"cursor": "not-a-cursor"}),
        (path, {"cursor": tampered}),
        (path, {"cursor": list_cursor}),  # a list's cursor is not a messages cursor
        (f"/chat/{other_conversation}/messages", {"cursor": cursor}),  # nor another's
        ("/chat", {"cursor": cursor}),
        ("/chat", {"limit": "0"}),
        ("/chat", {"cursor": ""}),
    ]
    for _ in ("database", "read cache"):
        for where, params in bad:
            response = await client.get(where, headers=auth(token), params=params)
            assert response.status_code == 400, (where, params, response.text)
            body = response.json()
            assert body["code"] == "invalid_request" and body["details"], body
        for conversation in (conversation_id, other_conversation):  # now cached
            await client.get(f"/chat/{conversation}", headers=auth(token))
    # nothing changed
    again = (await client.get(path, headers=auth(token), params={"limit": 2})).json()
    assert again == first


async def test_other_users_cursors_are_useless(client):
    token_a, conversation_a = await conversation_with_turns(client, 3)
    token_b, conversation_b = await conversation_with_turns(client, 3)
    cursor_a = (
        await client.get(
            f"/chat/{conversation_a}/messages", headers=auth(token_a), params={"limit": 2}
        )
    ).json()["next_cursor"]
    assert cursor_a
    # B cannot read A's conversation, with or without A's cursor
    theirs = await client.get(
        f"/chat/{conversation_a}/messages", headers=auth(token_b), params={"cursor": cursor_a}
    )
    assert theirs.status_code == 403
    # nor use A's cursor on B's own conversation or list
    for path in (f"/chat/{conversation_b}/messages", "/chat"):
        response = await client.get(path, headers=auth(token_b), params={"cursor": cursor_a})
        assert response.status_code == 400, path
    await client.post("/chat", headers=auth(token_a))
    list_cursor_a = (await client.get("/chat", headers=auth(token_a), params={"limit": 1})).json()[
        "next_cursor"
    ]
    response = await client.get("/chat", headers=auth(token_b), params={"cursor": list_cursor_a})
    assert response.status_code == 400


async def test_paging_needs_a_token_and_the_conversation(client):
    token, conversation_id = await new_session(client)
    response = await client.get(f"/chat/{conversation_id}/messages", params={"limit": 5})
    assert response.status_code == 401
    response = await client.get("/chat/nope/messages", headers=auth(token), params={"limit": 5})
    assert response.status_code == 404


async def test_pages_carry_compact_tool_payloads_unless_full_is_asked(client):
    token, conversation_id = await new_session(client)
    await send(client, token, conversation_id, "list methods")
    path = f"/chat/{conversation_id}/messages"
    whole = (await client.get(path, headers=auth(token))).json()["messages"]
    events = whole[1].get("tool_events")
    if not events:
        pytest.fail("the offline assistant lists methods with a tool; expected tool_events")
    compact = (await client.get(path, headers=auth(token), params={"limit": 10})).json()
    full = (
        await client.get(path, headers=auth(token), params={"limit": 10, "tool_payloads": "full"})
    ).json()
    assert full["messages"][1]["tool_events"] == events
    compact_events = compact["messages"][1]["tool_events"]
    assert [(e["type"], e["tool_name"], e["tool_call_id"]) for e in compact_events] == [
        (e["type"], e["tool_name"], e["tool_call_id"]) for e in events
    ]
    assert len(str(compact_events)) < len(str(events))

    def keys(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keys(v)}
        if isinstance(node, list):
            return {k for v in node for k in keys(v)}
        return set()

    for event in compact_events:
        payload_keys = keys(event["payload"])
        assert all(
            k in {"id", "method", "status"} or k.endswith("_id") or k == "job" for k in payload_keys
        ), payload_keys


async def test_sends_to_many_conversations_at_once_are_each_stored_whole(client):
    token, _ = await new_session(client)
    ids = [(await client.post("/chat", headers=auth(token))).json()["id"] for _ in range(12)]
    await asyncio.gather(*[send(client, token, c, f"what is MEME? {c}") for c in ids for _ in "ab"])
    for conversation_id in ids:
        body = (
            await client.get(
                f"/chat/{conversation_id}/messages", headers=auth(token), params={"limit": 10}
            )
        ).json()
        assert [m["id"] for m in body["messages"]] == [1, 2, 3, 4]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * 2
        assert body["messages"][0]["content"] == f"what is MEME? {conversation_id}"
