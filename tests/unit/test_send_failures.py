"""How the service treats a failing or slow assistant, using assistant test doubles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from datamonkey_chat.api.app import create_app
from datamonkey_chat.assistant.base import (
    AssistantDeps,
    AssistantProviderError,
    AssistantReply,
    AssistantTimeoutError,
    ReplyDone,
    StoredTurn,
    StreamEvent,
    TextDelta,
)
from tests.conftest import open_client, serve_in_process

JSON = {"Content-Type": "application/json"}


class ScriptedAssistantDouble:
    """Test double: replies, fails or stalls as a test scripts it."""

    description = "scripted test double"
    replays_records = True

    def __init__(self) -> None:
        self.fail_with: Exception | None = None
        self.stream_then_fail: Exception | None = None
        self.seen_histories: list[list[StoredTurn]] = []
        self.seen_deps: list[AssistantDeps] = []
        self.release = asyncio.Event()
        self.release.set()

    async def reply(self, history, message, deps) -> AssistantReply:
        self.seen_histories.append(list(history))
        self.seen_deps.append(deps)
        await self.release.wait()
        if self.fail_with:
            raise self.fail_with
        return AssistantReply(text=f"reply to {message}")

    async def stream(self, history, message, deps) -> AsyncIterator[StreamEvent]:
        yield TextDelta("part one ")
        await self.release.wait()
        if self.stream_then_fail:
            raise self.stream_then_fail
        yield TextDelta("part two")
        yield ReplyDone(AssistantReply(text="part one part two"))

    async def title(self, first_message: str, first_reply: str) -> str:
        return "scripted title"

    async def health(self) -> str:
        return "healthy"


@pytest.fixture
def double() -> ScriptedAssistantDouble:
    return ScriptedAssistantDouble()


@pytest.fixture
async def client(settings, double) -> AsyncIterator[httpx.AsyncClient]:
    async for c in open_client(create_app(settings, assistant=double)):
        yield c


async def start(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    response = await client.post("/chat", headers=JSON)
    return {**JSON, "user_token": response.headers["X-Session-Token"]}, response.json()["id"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (AssistantProviderError("openai answered HTTP 500"), 502, "model_error"),
        (AssistantTimeoutError("no reply within 120 s"), 504, "model_timeout"),
        (RuntimeError("boom"), 500, "internal_error"),
    ],
)
async def test_failed_reply_stores_nothing_and_names_cause(client, double, error, status, code):
    headers, conversation_id = await start(client)
    double.fail_with = error
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=headers, json={"message": "hello"}
    )
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code and body["error"]
    if isinstance(error, AssistantProviderError | AssistantTimeoutError):
        assert body["details"] == error.cause
    messages = await client.get(f"/chat/{conversation_id}/messages", headers=headers)
    assert messages.json()["messages"] == []


async def test_history_and_identity_reach_the_assistant(client, double):
    headers, conversation_id = await start(client)
    for text in ["one", "two", "three"]:
        await client.post(
            f"/chat/{conversation_id}/messages", headers=headers, json={"message": text}
        )
    assert [len(h) for h in double.seen_histories] == [0, 1, 2]
    assert [t.user_text for t in double.seen_histories[-1]] == ["one", "two"]
    assert double.seen_histories[-1][0].reply_text == "reply to one"
    deps = double.seen_deps[-1]
    assert deps.conversation_id == conversation_id and deps.current_message == "three"
    assert deps.user_id and deps.user_id not in headers["user_token"].split(".")[0]


async def test_title_from_assistant_after_first_reply(client, double):
    headers, conversation_id = await start(client)
    await client.post(f"/chat/{conversation_id}/messages", headers=headers, json={"message": "x"})
    for _ in range(50):
        title = (await client.get(f"/chat/{conversation_id}", headers=headers)).json()["title"]
        if title:
            break
        await asyncio.sleep(0.02)
    assert title == "scripted title"


async def test_explicit_title_is_kept(client, double):
    response = await client.post("/chat", headers=JSON, json={"title": "mine"})
    headers = {**JSON, "user_token": response.headers["X-Session-Token"]}
    conversation_id = response.json()["id"]
    await client.post(f"/chat/{conversation_id}/messages", headers=headers, json={"message": "x"})
    await asyncio.sleep(0.1)
    assert (await client.get(f"/chat/{conversation_id}", headers=headers)).json()["title"] == "mine"


async def test_stream_events_in_order_and_stored_once(client, double):
    headers, conversation_id = await start(client)
    response = await client.post(
        f"/chat/{conversation_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"message": "stream please"},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        line.split(": ", 1)[1] for line in response.text.splitlines() if line.startswith("event:")
    ]
    assert events == ["delta", "delta", "done"]
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=headers)).json()
    assert [m["content"] for m in messages["messages"]] == ["stream please", "part one part two"]


async def test_stream_failure_sends_error_event_and_stores_nothing(client, double):
    headers, conversation_id = await start(client)
    double.stream_then_fail = AssistantProviderError("provider went away")
    response = await client.post(
        f"/chat/{conversation_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"message": "stream please"},
    )
    assert "event: error" in response.text and '"status":502' in response.text
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=headers)).json()
    assert messages["messages"] == []


async def test_stream_abandoned_midway_stores_nothing(settings, double):
    # Real HTTP: only a real connection can go away in the middle of a response.
    async with serve_in_process(create_app(settings, assistant=double)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            headers, conversation_id = await start(client)
            double.release.clear()  # the stream stalls after its first delta
            url = f"/chat/{conversation_id}/messages"
            stream_headers = {**headers, "Accept": "text/event-stream"}
            async with client.stream(
                "POST", url, headers=stream_headers, json={"message": "m"}
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("event: delta"):
                        break  # the client goes away mid-reply
            await asyncio.sleep(0.2)
            double.release.set()
            await asyncio.sleep(0.2)
            messages = (await client.get(url, headers=headers)).json()
            assert messages["messages"] == []
            # the conversation is not left locked: the next send goes through
            after = await client.post(url, headers=headers, json={"message": "again"})
            assert after.status_code == 200


async def test_delete_during_reply_stores_nothing(client, double):
    headers, conversation_id = await start(client)
    double.release.clear()
    send = asyncio.create_task(
        client.post(f"/chat/{conversation_id}/messages", headers=headers, json={"message": "m"})
    )
    await asyncio.sleep(0.05)
    delete = asyncio.create_task(client.delete(f"/chat/{conversation_id}", headers=headers))
    await asyncio.sleep(0.05)
    double.release.set()
    sent, deleted = await send, await delete
    assert sent.status_code == 200  # the delete waited for the turn to finish
    assert deleted.status_code == 204
    assert (await client.get(f"/chat/{conversation_id}", headers=headers)).status_code == 404


async def test_sends_are_admitted_a_few_at_a_time(make_settings, double):
    """MAX_CONCURRENT_SENDS: past it, sends wait (not fail) until one before them is done."""
    settings = make_settings(max_concurrent_sends=2)
    async for client in open_client(create_app(settings, assistant=double)):
        chats = [await start(client) for _ in range(5)]
        double.release.clear()  # every admitted send waits in the assistant
        sends = [
            asyncio.create_task(
                client.post(f"/chat/{cid}/messages", headers=headers, json={"message": "hi"})
            )
            for headers, cid in chats
        ]
        for _ in range(100):
            await asyncio.sleep(0.01)
        assert len(double.seen_histories) == 2 and not any(s.done() for s in sends)
        double.release.set()
        answers = await asyncio.gather(*sends)
        assert [a.status_code for a in answers] == [200] * 5
        assert len(double.seen_histories) == 5


def test_offline_sends_are_admitted_in_turns_and_model_sends_are_not() -> None:
    from datamonkey_chat.settings import Settings

    assert Settings(_env_file=None, model=None).send_slots == 16
    assert Settings(_env_file=None, model="openai:gpt-4.1-mini").send_slots is None
    assert Settings(_env_file=None, model=None, max_concurrent_sends=0).send_slots == 1
