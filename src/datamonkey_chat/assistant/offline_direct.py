"""The offline assistant's replies, without an agent run's machinery.

The offline model is ours and decides in microseconds, so Pydantic AI's agent graph around
it (run contexts, graph nodes, task groups, capability hooks: about 10 ms of CPU for a
two-request reply) was most of what a send cost. `OfflineAssistant.reply` does what that
run does, and nothing more: ask `decide()` for the next step, call the tools it names
through the very same toolsets (Pydantic AI's `get_tools` / `call_tool`, arguments validated
by each tool's own schema), hand the results back, until the step is text; the turn is
recorded as the same Pydantic AI messages. The history it sees is the agent's: the turns
`history_messages` would keep within the context budget.

Streamed replies take the same path, with the events the agent streams for this model (tool
calls and results as they happen, then the text a word at a time).
tests/unit/test_offline_direct.py checks that this and `PydanticAIAssistant` running the
same model give the same reply (text, tool calls and results, recorded messages) and the same stream
for every example phrasing of catalog/intents.json.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

from pydantic import ValidationError
from pydantic_ai import RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.usage import RunUsage

from datamonkey_chat.assistant.agent import (
    call_event,
    derive_title,
    reply_from_messages,
    result_event,
    with_message,
)
from datamonkey_chat.assistant.base import (
    AssistantDeps,
    AssistantProviderError,
    AssistantReply,
    AssistantTimeoutError,
    ReplyDone,
    StoredTurn,
    StreamEvent,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.assistant.history import kept_turns
from datamonkey_chat.assistant.offline import (
    OFFLINE_DESCRIPTION,
    Observation,
    Situation,
    decide,
    offline_model,
    step_response,
    text_chunks,
)
from datamonkey_chat.assistant.tools import build_toolsets
from datamonkey_chat.settings import Settings

__all__ = ["OfflineAssistant"]

# Each handler of offline.decide needs at most three tool rounds and decide() answers with
# text past its own guard; this only bounds a bug.
MAX_MODEL_REQUESTS = 16

ToolTable = dict[str, tuple[AbstractToolset[AssistantDeps], ToolsetTool[AssistantDeps]]]


class OfflineAssistant:
    """The `Assistant` with no language model configured."""

    def __init__(
        self,
        settings: Settings,
        toolsets: Sequence[AbstractToolset[AssistantDeps]] | None = None,
    ) -> None:
        self._settings = settings
        self._toolsets = list(toolsets) if toolsets is not None else build_toolsets()
        self._model = offline_model()
        self._tools: ToolTable | None = None

    @property
    def description(self) -> str:
        return OFFLINE_DESCRIPTION

    @property
    def replays_records(self) -> bool:
        # decide() reads earlier turns' prompts only: the texts and sizes of the window.
        return False

    async def reply(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AssistantReply:
        async with aclosing(self._run(history, message, deps)) as run:
            async for event in run:
                if isinstance(event, ReplyDone):
                    return event.reply
        raise AssistantProviderError("the model run ended without a reply")

    async def stream(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AsyncIterator[StreamEvent]:
        """As the agent streams the offline model: the tool calls and their results as they
        happen, then the text a word at a time, then the reply."""
        # closed here, not by the garbage collector, when the client goes away mid-stream
        async with aclosing(self._run(history, message, deps)) as run:
            async for event in run:
                if isinstance(event, ReplyDone):
                    for chunk in text_chunks(event.reply.text):
                        yield TextDelta(chunk)
                yield event

    async def title(self, first_message: str, first_reply: str) -> str:
        return derive_title(first_message)  # no model to ask

    async def health(self) -> str:
        return "healthy"  # nothing it needs can be down

    async def _run(
        self, history: Sequence[StoredTurn], message: str, deps: AssistantDeps
    ) -> AsyncGenerator[ToolEvent | ReplyDone, None]:
        """The run's tool events, then its reply. Only tool calls wait for anything; each
        waits until the reply's deadline at most (a timeout never spans the caller's work
        between events)."""
        deadline = asyncio.get_running_loop().time() + self._settings.reply_timeout_seconds
        deps = with_message(deps, message)
        context = RunContext[AssistantDeps](
            deps=deps, model=self._model, usage=RunUsage(), prompt=message
        )
        tools = await self._tool_table(context)
        window = kept_turns(
            history, self._settings.context_budget_chars, reserve_chars=len(message)
        )
        situation = Situation(
            message=message,
            earlier=tuple(turn.user_text for turn in window),
            tools=frozenset(tools),
        )
        new: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(content=message)])]
        for run_step in range(1, MAX_MODEL_REQUESTS + 1):
            step = decide(situation)
            response = step_response(step)
            new.append(response)
            if not step.calls:
                yield ReplyDone(reply_from_messages(new, step.text))
                return
            calls = [part for part in response.parts if isinstance(part, ToolCallPart)]
            for call in calls:
                yield call_event(call)
            returns: list[ModelRequestPart] = []
            observed: list[Observation] = []
            for call in calls:
                step_context = dataclasses.replace(
                    context,
                    tool_name=call.tool_name,
                    tool_call_id=call.tool_call_id,
                    run_step=run_step,
                    messages=new,
                )
                try:
                    async with asyncio.timeout_at(deadline):
                        result = await self._call(tools, call, step_context)
                except TimeoutError as exc:
                    raise AssistantTimeoutError("the model did not answer in time") from exc
                returned = ToolReturnPart(call.tool_name, result, tool_call_id=call.tool_call_id)
                returns.append(returned)
                observed.append(Observation(call.tool_name, call.args_as_dict(), result))
                yield result_event(returned)
            new.append(ModelRequest(parts=returns))
            situation = dataclasses.replace(
                situation, observations=situation.observations + tuple(observed)
            )
        raise AssistantProviderError("the model exceeded the request limit for one reply")

    async def _tool_table(self, context: RunContext[AssistantDeps]) -> ToolTable:
        # Our toolsets are fixed function toolsets (no per-run `prepare`): list them once.
        if self._tools is None:
            table: ToolTable = {}
            for toolset in self._toolsets:
                for name, tool in (await toolset.get_tools(context)).items():
                    table[name] = (toolset, tool)
            self._tools = table
        return self._tools

    @staticmethod
    async def _call(
        tools: ToolTable, call: ToolCallPart, context: RunContext[AssistantDeps]
    ) -> Any:
        toolset, tool = tools[call.tool_name]  # decide() only calls tools it was offered
        try:
            arguments = tool.args_validator.validate_python(call.args_as_dict())
        except ValidationError as exc:
            raise AssistantProviderError(
                f"the offline assistant called {call.tool_name} with arguments it does not take"
            ) from exc
        return await toolset.call_tool(call.tool_name, arguments, context, tool)
