"""The offline assistant's direct replies against the same model run by Pydantic AI's agent.

`OfflineAssistant` skips the agent graph (assistant/offline_direct.py). For every example
phrasing of catalog/intents.json, with and without earlier turns, both must give the same
text, the same tool calls and results in the same order, the same recorded messages
(parts, tool names, arguments and results; ids and times aside), the same calls into the
analyses service, and, streamed, the same events in the same order.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai.messages import ModelMessagesTypeAdapter

from datamonkey_chat.assistant import PydanticAIAssistant, build_assistant
from datamonkey_chat.assistant.base import (
    AssistantDeps,
    AssistantReply,
    ReplyDone,
    StoredTurn,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.assistant.history import (
    history_messages,
    kept_turns,
    messages_chars,
    turn_messages,
)
from datamonkey_chat.assistant.offline import OFFLINE_DESCRIPTION, offline_model
from datamonkey_chat.assistant.offline_direct import OfflineAssistant
from datamonkey_chat.catalog.knowledge import Example, load_intents
from datamonkey_chat.settings import Settings
from tests.unit.offline_world import FakeAnalyses

EXAMPLES: list[Example] = [example for rule in load_intents().intents for example in rule.examples]


def agent_pipeline(settings: Settings) -> PydanticAIAssistant:
    return PydanticAIAssistant(
        offline_model(), settings=settings, description=OFFLINE_DESCRIPTION, offline=True
    )


def recorded(reply: AssistantReply) -> list[list[tuple[Any, ...]]]:
    """The recorded messages without ids, times and usage: each part's kind and content."""
    assert reply.model_messages is not None
    shape = []
    for message in ModelMessagesTypeAdapter.validate_json(reply.model_messages):
        parts = []
        for part in message.parts:
            content = getattr(part, "content", None)
            args = part.args_as_dict() if part.part_kind == "tool-call" else None
            parts.append((part.part_kind, getattr(part, "tool_name", None), content, args))
        shape.append(parts)
    return shape


def events(reply: AssistantReply) -> list[tuple[str, str, Any]]:
    return [(e.kind, e.tool_name, e.payload) for e in reply.tool_events]


async def both(history: list[StoredTurn], say: str) -> tuple[Any, ...]:
    settings = Settings(model=None)
    answers = []
    for assistant in (build_assistant(settings), agent_pipeline(settings)):
        fake = FakeAnalyses()
        deps = AssistantDeps(user_id="alice", conversation_id="c1", analyses=fake)
        reply = await assistant.reply(history, say, deps)
        answers.append((reply, fake.calls))
    return tuple(answers)


def test_the_server_answers_offline_with_the_direct_assistant() -> None:
    assert isinstance(build_assistant(Settings(model=None)), OfflineAssistant)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.say[:50] for e in EXAMPLES])
async def test_same_reply_as_the_agent_run(example: Example) -> None:
    history = [StoredTurn(text, "...") for text in example.earlier]
    (direct, direct_calls), (agent, agent_calls) = await both(history, example.say)

    assert direct.text == agent.text
    assert events(direct) == events(agent)
    assert recorded(direct) == recorded(agent)
    assert direct_calls == agent_calls


async def test_same_reply_after_recorded_turns() -> None:
    """History recorded by the agent run (tool calls and results) is read the same way."""
    settings = Settings(model=None)
    deps = AssistantDeps(user_id="alice", conversation_id="c1")
    history: list[StoredTurn] = []
    for say in ("what is MEME?", "list methods", "how do I cite it?", "and its options?"):
        direct = await build_assistant(settings).reply(history, say, deps)
        agent = await agent_pipeline(settings).reply(history, say, deps)
        assert (direct.text, events(direct)) == (agent.text, events(agent)), say
        history.append(StoredTurn(say, agent.text, agent.model_messages))
    assert "MEME" in history[2].reply_text  # "cite it" resolved from the history


def test_the_window_is_the_agents() -> None:
    """kept_turns keeps exactly the turns whose messages history_messages keeps."""
    turns = [
        StoredTurn(f"question {i} " + "x" * (i * 37 % 200), "answer " + "y" * (i * 53 % 300))
        for i in range(60)
    ]
    for budget in (0, 10, 500, 2_000, 9_000, 100_000):
        kept = kept_turns(turns, budget, reserve_chars=12)
        messages = history_messages(turns, budget, reserve_chars=12)
        prompts = [p.content for m in messages for p in m.parts if p.part_kind == "user-prompt"]
        assert prompts == [turn.user_text for turn in kept], budget
        assert 0 < len(kept) < len(turns) or budget in (0, 10, 100_000)


async def test_a_slow_tool_times_out_as_a_model_would() -> None:
    """The reply timeout covers the direct run's tool calls too (504, not a hang)."""
    from datamonkey_chat.assistant.base import AssistantTimeoutError

    class SlowAnalyses(FakeAnalyses):
        async def list_datasets(self, user_id: str) -> list[dict[str, Any]]:
            import asyncio

            await asyncio.sleep(10)
            return []

    assistant = build_assistant(Settings(model=None, reply_timeout_seconds=0.2))
    deps = AssistantDeps(user_id="alice", conversation_id="c1", analyses=SlowAnalyses())
    with pytest.raises(AssistantTimeoutError):
        await assistant.reply([], "my datasets", deps)


@pytest.mark.parametrize("example", EXAMPLES[::4], ids=[e.say[:50] for e in EXAMPLES[::4]])
async def test_the_stored_size_is_the_records_own_measure(example: Example) -> None:
    """`model_chars` (stored with the turn) equals the measure of the record read back."""
    (direct, _), (agent, _) = await both(
        [StoredTurn(t, "...") for t in example.earlier], example.say
    )
    for reply in (direct, agent):
        turn = StoredTurn(example.say, reply.text, reply.model_messages)
        assert reply.model_chars == messages_chars(turn_messages(turn)) > len(reply.text)


def in_call_order(events: list[Any]) -> list[Any]:
    """The agent streams the results of one round's calls as they complete (a tool in a
    worker thread finishes last); the direct run in the order they were called."""
    called = [e.tool_call_id for e in events if isinstance(e, ToolEvent) and e.kind == "tool_call"]
    ordered: list[Any] = []
    results: list[ToolEvent] = []
    for event in [*events, None]:
        if isinstance(event, ToolEvent) and event.kind == "tool_result":
            results.append(event)
            continue
        ordered += sorted(results, key=lambda e: called.index(e.tool_call_id))
        results = []
        if event is not None:
            ordered.append(event)
    return ordered


def streamed(run: list[Any]) -> list[Any]:
    """Stream events without ids: tool events' content, text deltas, the reply's content."""
    shown: list[Any] = []
    for event in in_call_order(run):
        if isinstance(event, ToolEvent):
            shown.append((event.kind, event.tool_name, event.payload))
        elif isinstance(event, TextDelta):
            shown.append(("delta", event.text))
        else:
            assert isinstance(event, ReplyDone)
            reply = event.reply
            shown.append(("done", reply.text, events(reply), recorded(reply)))
    return shown


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.say[:50] for e in EXAMPLES])
async def test_same_stream_as_the_agent_run(example: Example) -> None:
    history = [StoredTurn(text, "...") for text in example.earlier]
    settings = Settings(model=None)
    runs = []
    for assistant in (build_assistant(settings), agent_pipeline(settings)):
        fake = FakeAnalyses()
        deps = AssistantDeps(user_id="alice", conversation_id="c1", analyses=fake)
        runs.append(([e async for e in assistant.stream(history, example.say, deps)], fake.calls))
    (direct, direct_calls), (agent, agent_calls) = runs
    assert streamed(direct) == streamed(agent)
    assert isinstance(direct[-1], ReplyDone) and direct_calls == agent_calls
    assert "".join(e.text for e in direct if isinstance(e, TextDelta)) == direct[-1].reply.text
