"""Configuration alone switches the assistant to a remote model: the real OpenAI provider
path, over HTTP, against the scripted server running as a separate process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from datamonkey_chat.assistant import build_assistant
from datamonkey_chat.assistant.base import (
    Assistant,
    AssistantDeps,
    AssistantProviderError,
    AssistantTimeoutError,
    ReplyDone,
    StoredTurn,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.settings import Settings
from tests.integration.conftest import FakeOpenAIServer

DEPS = AssistantDeps(user_id="user-secret-id-7", conversation_id="conv-1")


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # the base URL must come from Settings alone; no real key must be sent anywhere
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def remote(server: FakeOpenAIServer, **overrides: Any) -> Assistant:
    return build_assistant(
        Settings(model="openai:fake-model", openai_base_url=server.base_url, **overrides)
    )


async def test_settings_switch_to_the_remote_model(fake_openai_server: FakeOpenAIServer) -> None:
    assistant = remote(fake_openai_server, temperature=0.3, max_output_tokens=256)
    assert assistant.description == "openai-compatible:fake-model"
    assert await assistant.health() == "healthy"

    reply = await assistant.reply([StoredTurn("earlier question", "earlier answer")], "hi", DEPS)

    assert reply.text == "Echo: hi (4 messages)"  # system prompt, the past turn, this message
    sent = fake_openai_server.last_request()
    assert sent["model"] == "fake-model"
    assert sent["temperature"] == 0.3
    assert 256 in (sent.get("max_tokens"), sent.get("max_completion_tokens"))
    roles = [m["role"] for m in sent["messages"]]
    assert roles[1:] == ["user", "assistant", "user"]
    assert roles[0] in ("system", "developer")
    assert "user-secret-id-7" not in str(sent)


async def test_remote_model_calls_catalog_tools(fake_openai_server: FakeOpenAIServer) -> None:
    reply = await remote(fake_openai_server).reply([], "what is MEME?", DEPS)

    meme = load_catalog().find("meme")
    assert meme is not None
    assert [(e.kind, e.tool_name) for e in reply.tool_events] == [
        ("tool_call", "describe_method"),
        ("tool_result", "describe_method"),
    ]
    assert reply.tool_events[0].payload == {"name": "MEME"}
    assert meme.citation in reply.text
    sent_tools = {t["function"]["name"] for t in fake_openai_server.last_request()["tools"]}
    assert {"list_methods", "describe_method", "start_analysis"} <= sent_tools


async def test_remote_model_streams(fake_openai_server: FakeOpenAIServer) -> None:
    events = [e async for e in remote(fake_openai_server).stream([], "what is FUBAR?", DEPS)]

    kinds = [e.kind if isinstance(e, ToolEvent) else type(e).__name__ for e in events]
    assert kinds[:2] == ["tool_call", "tool_result"]
    assert kinds[-1] == "ReplyDone" and kinds.count("ReplyDone") == 1
    assert kinds.count("TextDelta") > 3
    done = events[-1]
    assert isinstance(done, ReplyDone)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == done.reply.text
    fubar = load_catalog().find("fubar")
    assert fubar is not None and fubar.citation in done.reply.text
    assert fake_openai_server.last_request()["stream"] is True


async def test_provider_500_is_a_provider_error(fake_openai_server: FakeOpenAIServer) -> None:
    assistant = remote(fake_openai_server)
    with pytest.raises(AssistantProviderError) as caught:
        await assistant.reply([], "please FAIL500", DEPS)
    assert "500" in caught.value.cause
    assert "FAIL500" not in caught.value.cause

    with pytest.raises(AssistantProviderError):
        async for _ in assistant.stream([], "please FAIL500", DEPS):
            pass


async def test_hanging_server_times_out(fake_openai_server: FakeOpenAIServer) -> None:
    assistant = remote(fake_openai_server, reply_timeout_seconds=1.0)
    loop = asyncio.get_running_loop()

    started = loop.time()
    with pytest.raises(AssistantTimeoutError):
        await assistant.reply([], "HANG please", DEPS)
    assert loop.time() - started < 5

    started = loop.time()
    with pytest.raises(AssistantTimeoutError):
        async for _ in assistant.stream([], "HANG please", DEPS):
            pass
    assert loop.time() - started < 5


async def test_unreachable_server_is_a_provider_error() -> None:
    assistant = build_assistant(
        Settings(model="openai:fake-model", openai_base_url="http://127.0.0.1:9/v1")
    )
    with pytest.raises(AssistantProviderError) as caught:
        await assistant.reply([], "hi", DEPS)
    assert caught.value.cause == "could not connect to the model provider"
