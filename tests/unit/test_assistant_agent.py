"""PydanticAIAssistant driven by Pydantic AI's FunctionModel: scripted test doubles stand
in for a language model; the agent, tools, history and streaming are the real ones."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from pydantic_ai.exceptions import ModelConnectionError, ModelHTTPError
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.assistant import PydanticAIAssistant, build_assistant
from datamonkey_chat.assistant.agent import derive_title
from datamonkey_chat.assistant.base import (
    AssistantDeps,
    AssistantProviderError,
    AssistantTimeoutError,
    ReplyDone,
    StoredTurn,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.assistant.history import history_messages, messages_chars
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.settings import Settings

DEPS = AssistantDeps(user_id="alice-42", conversation_id="conv-1")


def settings(**overrides: Any) -> Settings:
    return Settings(model=None, **overrides)


def assistant_with(model: FunctionModel, **overrides: Any) -> PydanticAIAssistant:
    return PydanticAIAssistant(model, settings=settings(**overrides), description="test double")


def transcript(messages: list[ModelMessage]) -> list[tuple[str, str]]:
    """(role, text) of every user prompt and assistant text the model was shown."""
    seen: list[tuple[str, str]] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, UserPromptPart) and isinstance(part.content, str):
                seen.append(("user", part.content))
            elif isinstance(part, TextPart):
                seen.append(("assistant", part.content))
            elif isinstance(part, ToolCallPart):
                seen.append(("tool_call", part.tool_name))
            elif isinstance(part, ToolReturnPart):
                seen.append(("tool_result", part.tool_name))
    return seen


class RecordingEcho:
    """Test double model: remembers what it was sent, answers with a fixed text."""

    def __init__(self, answer: str = "ok") -> None:
        self.answer = answer
        self.seen: list[list[ModelMessage]] = []
        self.infos: list[AgentInfo] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen.append(list(messages))
        self.infos.append(info)
        return ModelResponse(parts=[TextPart(self.answer)])


def scripted_tool_model(tool: str, args: dict[str, Any], answer: str) -> FunctionModel:
    """Test double model: first calls `tool`, then answers with `answer` + the tool result."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if returns:
            return ModelResponse(parts=[TextPart(f"{answer} {json.dumps(returns[0].content)}")])
        return ModelResponse(parts=[ToolCallPart(tool, args, tool_call_id="call-1")])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        returns = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        if returns:
            for piece in re.findall(r"\S+\s*", f"{answer} {json.dumps(returns[0].content)}"):
                yield piece
            return
        delta: DeltaToolCalls = {0: DeltaToolCall(tool, json.dumps(args), tool_call_id="call-1")}
        yield delta

    return FunctionModel(respond, stream_function=stream)


class RecordingAnalyses:
    """Test double of the analyses service: records which user each call was made for."""

    def __init__(self) -> None:
        self.user_ids: list[str] = []

    async def list_datasets(self, user_id: str) -> list[dict[str, Any]]:
        self.user_ids.append(user_id)
        return [{"dataset_id": "d1", "name": "mine.fasta"}]

    async def get_dataset(self, user_id: str, dataset_id: str) -> dict[str, Any]:
        raise LookupError(f"Dataset {dataset_id} not found.")


# -- history


async def test_history_is_sent_oldest_first_then_the_new_message() -> None:
    echo = RecordingEcho()
    assistant = assistant_with(FunctionModel(echo))
    history = [StoredTurn("first question", "first answer"), StoredTurn("second", "reply 2")]

    await assistant.reply(history, "third", DEPS)

    assert transcript(echo.seen[0]) == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "second"),
        ("assistant", "reply 2"),
        ("user", "third"),
    ]


async def test_stored_model_messages_replay_tool_calls() -> None:
    first = await assistant_with(
        scripted_tool_model("describe_method", {"name": "fel"}, "FEL is")
    ).reply([], "what is FEL?", DEPS)
    echo = RecordingEcho()

    await assistant_with(FunctionModel(echo)).reply(
        [StoredTurn("what is FEL?", first.text, first.model_messages)], "and MEME?", DEPS
    )

    assert transcript(echo.seen[0]) == [
        ("user", "what is FEL?"),
        ("tool_call", "describe_method"),
        ("tool_result", "describe_method"),
        ("assistant", first.text),
        ("user", "and MEME?"),
    ]


async def test_unreadable_model_messages_fall_back_to_text() -> None:
    echo = RecordingEcho()
    await assistant_with(FunctionModel(echo)).reply(
        [StoredTurn("q", "a", model_messages='{"not": "messages"}')], "next", DEPS
    )
    assert transcript(echo.seen[0]) == [("user", "q"), ("assistant", "a"), ("user", "next")]


async def test_trimming_drops_the_oldest_whole_turns() -> None:
    echo = RecordingEcho()
    turns = [StoredTurn(f"question {i} " + "x" * 80, f"answer {i} " + "y" * 80) for i in range(5)]
    # room for the new message and two turns (each ~180 chars), not three
    assistant = assistant_with(FunctionModel(echo), context_budget_chars=420)

    await assistant.reply(turns, "new", DEPS)

    users = [text for role, text in transcript(echo.seen[0]) if role == "user"]
    assert [u.split(" x")[0] for u in users] == ["question 3", "question 4", "new"]


async def test_trimming_never_separates_a_tool_call_from_its_result() -> None:
    first = await assistant_with(
        scripted_tool_model("describe_method", {"name": "meme"}, "MEME:")
    ).reply([], "what is MEME?", DEPS)
    turn = StoredTurn("what is MEME?", first.text, first.model_messages)
    size = messages_chars(history_messages([turn], 10**9))

    for budget in (size - 1, size, size + 1):
        kept = transcript(history_messages([turn, StoredTurn("hi", "hello")], budget + 7))
        calls = [k for k in kept if k[0] == "tool_call"]
        results = [k for k in kept if k[0] == "tool_result"]
        assert len(calls) == len(results)
        assert kept[-2:] == [("user", "hi"), ("assistant", "hello")]


async def test_an_oversized_latest_turn_is_dropped_whole() -> None:
    turns = [StoredTurn("a" * 500, "b" * 500)]
    assert history_messages(turns, 100) == []


# -- tools and identity


async def test_tools_get_the_user_from_deps_and_the_prompt_never_holds_it() -> None:
    analyses = RecordingAnalyses()
    model = scripted_tool_model("list_datasets", {}, "Your datasets:")
    deps = AssistantDeps(user_id="alice-42", conversation_id="conv-1", analyses=analyses)
    seen_instructions: list[str | None] = []

    def spy(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_instructions.append(info.instructions)
        assert model.function is not None
        result = model.function(messages, info)
        assert isinstance(result, ModelResponse)
        return result

    reply = await assistant_with(FunctionModel(spy)).reply([], "my datasets", deps)

    assert analyses.user_ids == ["alice-42"]
    assert "mine.fasta" in reply.text
    assert all(i and "Datamonkey" in i and "alice-42" not in i for i in seen_instructions)
    assert "alice-42" not in (reply.model_messages or "")
    assert [(e.kind, e.tool_name) for e in reply.tool_events] == [
        ("tool_call", "list_datasets"),
        ("tool_result", "list_datasets"),
    ]
    assert reply.tool_events[0].tool_call_id == reply.tool_events[1].tool_call_id == "call-1"


async def test_model_sees_every_tool() -> None:
    echo = RecordingEcho()
    await assistant_with(FunctionModel(echo)).reply([], "hi", DEPS)
    names = {tool.name for tool in echo.infos[0].function_tools}
    assert names == {
        "list_methods", "describe_method", "explain_term", "list_datasets", "describe_dataset",
        "save_pasted_alignment", "start_analysis", "job_status", "job_results",
        "cancel_job", "list_jobs",
    }  # fmt: skip


async def test_describe_method_returns_catalog_facts_and_the_options_model() -> None:
    reply = await assistant_with(
        scripted_tool_model("describe_method", {"name": "fixed effects likelihood"}, "says:")
    ).reply([], "FEL?", DEPS)
    result = reply.tool_events[1].payload
    fel = load_catalog().find("fel")
    assert fel is not None
    assert result["citation"] == fel.citation
    fields = list(registry()["fel"].Options.model_fields)
    assert [option["name"] for option in result["options"]] == fields
    assert list(result["options_schema"]["properties"]) == fields
    assert result["options_schema"]["properties"]["pvalue"]["maximum"] == 1


async def test_tool_errors_become_readable_results() -> None:
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=RecordingAnalyses())
    reply = await assistant_with(
        scripted_tool_model("describe_dataset", {"dataset_id": "nope"}, "Error:")
    ).reply([], "describe nope", deps)
    assert reply.tool_events[1].payload == {"error": "Dataset nope not found."}


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("describe_dataset", {"dataset_id": "d\x00"}),
        ("start_analysis", {"method": "fel", "alignment_id": "d1", "options": {"p": "\x00"}}),
        ("cancel_job", {"job_id": "\x00"}),
    ],
    ids=["nul-id", "nul-option", "nul-job"],
)
async def test_tool_arguments_no_database_can_store_are_refused(
    tool: str, args: dict[str, Any]
) -> None:
    analyses = RecordingAnalyses()
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=analyses)
    reply = await assistant_with(scripted_tool_model(tool, args, "Error:")).reply([], "go", deps)
    error = reply.tool_events[1].payload["error"]
    assert "NUL" in error or "surrogate" in error
    assert analyses.user_ids == []  # the service was never called


async def test_analysis_tools_without_a_service_say_so() -> None:
    reply = await assistant_with(scripted_tool_model("list_jobs", {}, "Jobs:")).reply(
        [], "my jobs", DEPS
    )
    assert "not available on this server" in reply.tool_events[1].payload["error"]


async def test_model_settings_are_applied() -> None:
    echo = RecordingEcho()
    assistant = assistant_with(FunctionModel(echo), temperature=0.2, max_output_tokens=321)
    await assistant.reply([], "hi", DEPS)
    applied = echo.infos[0].model_settings or {}
    assert applied.get("temperature") == 0.2
    assert applied.get("max_tokens") == 321


# -- failures


async def test_provider_http_error_becomes_a_provider_error_without_secrets() -> None:
    def failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(500, "m", body={"error": "bad key sk-secret-123 for 'hello'"})

    with pytest.raises(AssistantProviderError) as caught:
        await assistant_with(FunctionModel(failing)).reply([], "hello", DEPS)
    assert "500" in caught.value.cause
    assert "sk-secret" not in caught.value.cause and "hello" not in caught.value.cause


async def test_connection_error_becomes_a_provider_error() -> None:
    def failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelConnectionError("m", "connection refused to https://user:pw@host")

    with pytest.raises(AssistantProviderError) as caught:
        await assistant_with(FunctionModel(failing)).reply([], "hello", DEPS)
    assert caught.value.cause == "could not connect to the model provider"


async def test_slow_model_times_out() -> None:
    async def slow(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        await asyncio.sleep(30)
        return ModelResponse(parts=[TextPart("too late")])

    assistant = assistant_with(FunctionModel(slow), reply_timeout_seconds=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(AssistantTimeoutError):
        await assistant.reply([], "hello", DEPS)
    assert loop.time() - started < 5


async def test_slow_stream_times_out() -> None:
    async def slow(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "partial "
        await asyncio.sleep(30)
        yield "too late"

    assistant = assistant_with(FunctionModel(stream_function=slow), reply_timeout_seconds=0.3)
    received: list[object] = []
    with pytest.raises(AssistantTimeoutError):
        async for event in assistant.stream([], "hello", DEPS):
            received.append(event)
    assert not any(isinstance(e, ReplyDone) for e in received)


async def test_stream_provider_error() -> None:
    async def failing(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        raise ModelHTTPError(503, "m")
        yield "never"

    assistant = assistant_with(FunctionModel(stream_function=failing))
    with pytest.raises(AssistantProviderError) as caught:
        async for _ in assistant.stream([], "hello", DEPS):
            pass
    assert "503" in caught.value.cause


# -- streaming


async def test_stream_yields_tool_events_then_text_then_one_reply_done() -> None:
    model = scripted_tool_model("describe_method", {"name": "fubar"}, "FUBAR facts:")
    assistant = assistant_with(model)

    events = [e async for e in assistant.stream([], "what is FUBAR?", DEPS)]

    kinds = [e.kind if isinstance(e, ToolEvent) else type(e).__name__ for e in events]
    assert kinds[:2] == ["tool_call", "tool_result"]
    assert set(kinds[2:-1]) == {"TextDelta"} and len(kinds) > 4
    assert kinds[-1] == "ReplyDone"
    done = events[-1]
    assert isinstance(done, ReplyDone)
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == done.reply.text
    assert [e for e in events if isinstance(e, ToolEvent)] == done.reply.tool_events
    # the same turn as the non-streaming path records
    plain = await assistant.reply([], "what is FUBAR?", DEPS)
    assert plain.text == done.reply.text
    assert [(e.kind, e.tool_name) for e in plain.tool_events] == [
        (e.kind, e.tool_name) for e in done.reply.tool_events
    ]


async def test_reply_model_messages_round_trip() -> None:
    reply = await assistant_with(FunctionModel(RecordingEcho("hello there"))).reply([], "hi", DEPS)
    assert reply.model_messages is not None
    messages = ModelMessagesTypeAdapter.validate_json(reply.model_messages)
    assert isinstance(messages[0], ModelRequest) and isinstance(messages[-1], ModelResponse)
    assert reply.text == "hello there" and reply.tool_events == []


# -- titles


async def test_title_from_the_model_is_cleaned() -> None:
    assistant = assistant_with(FunctionModel(RecordingEcho('"Selection in HIV env."\n')))
    assert await assistant.title("what is FEL?", "FEL is ...") == "Selection in HIV env"


async def test_title_falls_back_when_the_model_fails() -> None:
    def failing(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ModelHTTPError(500, "m")

    assistant = assistant_with(FunctionModel(failing))
    assert await assistant.title("  what is   FEL? ", "") == "what is FEL?"


async def test_offline_title_is_derived_from_the_first_message() -> None:
    assistant = build_assistant(settings())
    long = "Please explain " + "selection analyses " * 10
    title = await assistant.title(long, "...")
    assert title.startswith("Please explain selection") and len(title) <= 80
    assert await assistant.title("what is MEME?", "...") == "what is MEME?"
    assert derive_title("") == "New conversation"
    assert derive_title(">a\nACGT\n>b\nACGT\n") == "Pasted alignment"


# -- building from settings


async def test_default_is_the_offline_assistant() -> None:
    assistant = build_assistant(settings())
    assert assistant.description == "offline assistant"
    assert await assistant.health() == "healthy"


async def test_configured_model_without_its_key_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assistant = build_assistant(Settings(model="anthropic:claude-sonnet-4-5"))
    assert await assistant.health() == "unhealthy"
    with pytest.raises(AssistantProviderError) as caught:
        await assistant.reply([], "hi", DEPS)
    assert "ANTHROPIC_API_KEY" in caught.value.cause


async def test_configured_model_with_a_key_is_healthy_without_calling_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assistant = build_assistant(Settings(model="openai:gpt-4.1-mini"))
    assert assistant.description == "openai:gpt-4.1-mini"
    assert await assistant.health() == "healthy"


async def test_base_url_makes_an_openai_compatible_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for model in ("llama3.1:8b", "ollama:llama3.1:8b", "openai:llama3.1:8b"):
        assistant = build_assistant(Settings(model=model, openai_base_url="http://127.0.0.1:9/v1"))
        assert assistant.description == "openai-compatible:llama3.1:8b"
        assert await assistant.health() == "healthy"


async def test_unknown_provider_is_unhealthy() -> None:
    assistant = build_assistant(Settings(model="nosuch:model"))
    assert await assistant.health() == "unhealthy"


async def test_closing_the_stream_early_leaves_no_run_behind() -> None:
    assistant = build_assistant(settings())
    stream = assistant.stream([], "what is MEME?", DEPS)
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    await stream.aclose()  # what a disconnecting client does
    assert isinstance(first, ToolEvent)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == 1  # only this test's task
