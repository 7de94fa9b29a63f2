"""The one assistant pipeline: a Pydantic AI agent with Datamonkey's tools, for any model.

Every LLM goes through `PydanticAIAssistant`: same toolsets, same history handling, same
streaming; only the model differs. (The offline assistant's replies run its model and the
same toolsets without the agent graph: assistant/offline_direct.py, tested against this
pipeline.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
from pydantic_ai import Agent
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.exceptions import (
    FallbackExceptionGroup,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRequestTimeout,
    ModelTimeoutError,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models import Model, infer_model
from pydantic_ai.run import AgentRunResultEvent
from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import AbstractToolset
from pydantic_core import to_jsonable_python

from datamonkey_chat.assistant.analysis_tools import extract_alignment
from datamonkey_chat.assistant.base import (
    Assistant,
    AssistantDeps,
    AssistantError,
    AssistantProviderError,
    AssistantReply,
    AssistantTimeoutError,
    ReplyDone,
    StoredTurn,
    StreamEvent,
    TextDelta,
    ToolEvent,
)
from datamonkey_chat.assistant.history import history_messages, messages_chars
from datamonkey_chat.assistant.prompts import system_prompt
from datamonkey_chat.assistant.tools import build_toolsets
from datamonkey_chat.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["PydanticAIAssistant", "build_assistant", "derive_title", "resolve_model"]

TITLE_MAX_CHARS = 80
TITLE_TIMEOUT_SECONDS = 20.0
TITLE_INSTRUCTIONS = (
    "Write a short title (at most 8 words) for a conversation that starts with the exchange "
    "below. Answer with the title only: no quotes, no final period."
)
# Providers spoken to through the OpenAI chat-completions API when a base URL is set.
OPENAI_COMPATIBLE = {"", "openai", "openai-chat", "ollama", "vllm", "lmstudio", "llamacpp", "local"}
# Older Pydantic AI provider names people still write.
PROVIDER_ALIASES = {"google-gla": "google", "google-vertex": "google-cloud"}
LOCAL_API_KEY = "not-needed"  # local OpenAI-compatible servers ignore the key but the SDK wants one


class PydanticAIAssistant:
    """`Assistant` over a Pydantic AI agent; `model=None` means misconfigured (all replies fail)."""

    def __init__(
        self,
        model: Model | None,
        *,
        settings: Settings,
        description: str,
        offline: bool = False,
        toolsets: Sequence[AbstractToolset[AssistantDeps]] | None = None,
        config_problem: str | None = None,
    ) -> None:
        self._settings = settings
        self._description = description
        self._offline = offline
        self._config_problem = config_problem or "no model is configured"
        self._agent: Agent[AssistantDeps, str] | None = None
        self._title_agent: Agent[None, str] | None = None
        if model is not None:
            model_settings = _model_settings(settings)
            self._agent = Agent(
                model,
                deps_type=AssistantDeps,
                output_type=str,
                instructions=system_prompt(),
                toolsets=list(toolsets) if toolsets is not None else build_toolsets(),
                model_settings=model_settings,
                name="datamonkey",
            )
            self._title_agent = Agent(
                model,
                output_type=str,
                instructions=TITLE_INSTRUCTIONS,
                model_settings=model_settings,
                name="datamonkey-title",
            )

    @property
    def description(self) -> str:
        return self._description

    @property
    def replays_records(self) -> bool:
        return True  # a model sees its earlier tool calls and results

    async def reply(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AssistantReply:
        agent = self._require_agent()
        deps = with_message(deps, message)
        messages = self._history(history, message)
        try:
            async with asyncio.timeout(self._settings.reply_timeout_seconds):
                result = await agent.run(message, message_history=messages, deps=deps)
        except Exception as exc:
            raise self._assistant_error(exc) from exc
        return _reply_from(result)

    async def stream(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AsyncIterator[StreamEvent]:
        agent = self._require_agent()
        deps = with_message(deps, message)
        messages = self._history(history, message)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.reply_timeout_seconds
        texts = _TextJoiner()
        try:
            async with agent.run_stream_events(
                message, message_history=messages, deps=deps
            ) as events:
                while True:
                    # A timeout per event: a timeout scope must not span our `yield`s. Not
                    # wait_for: on Python 3.11 it swallows a cancel (the client went away)
                    # that arrives as an event does, and the run would go on and be stored.
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise TimeoutError
                    try:
                        async with asyncio.timeout(remaining):
                            event = await anext(events)
                    except StopAsyncIteration:
                        break
                    if isinstance(event, AgentRunResultEvent):
                        yield ReplyDone(_reply_from(event.result))
                        return
                    for item in _translate(event, texts):
                        yield item
        except Exception as exc:
            raise self._assistant_error(exc) from exc
        raise AssistantProviderError("the model run ended without a reply")

    async def title(self, first_message: str, first_reply: str) -> str:
        if self._offline or self._title_agent is None:
            return derive_title(first_message)
        prompt = f"User: {first_message[:2000]}\n\nAssistant: {first_reply[:2000]}"
        timeout = min(self._settings.reply_timeout_seconds, TITLE_TIMEOUT_SECONDS)
        try:
            async with asyncio.timeout(timeout):
                result = await self._title_agent.run(prompt)
        except Exception as exc:  # a title is never worth failing a conversation over
            logger.info("title from the model failed (%s); deriving one", type(exc).__name__)
            return derive_title(first_message)
        return _clean_title(result.output) or derive_title(first_message)

    async def health(self) -> str:
        return "healthy" if self._agent is not None else "unhealthy"

    # -- helpers

    def _require_agent(self) -> Agent[AssistantDeps, str]:
        if self._agent is None:
            raise AssistantProviderError(self._config_problem)
        return self._agent

    def _history(self, history: Sequence[StoredTurn], message: str) -> list[ModelMessage]:
        return history_messages(
            history, self._settings.context_budget_chars, reserve_chars=len(message)
        )

    def _assistant_error(self, exc: Exception) -> Exception:
        if isinstance(exc, AssistantError):
            return exc
        mapped = provider_error(exc)
        if mapped is None:
            return exc
        logger.warning("%s: %s (%s)", self._description, mapped.cause, type(exc).__name__)
        return mapped


def provider_error(exc: BaseException) -> AssistantError | None:
    """The safe, secret-free AssistantError for a failure of the model, or None if it is not one.

    Provider messages and bodies are never copied: they may echo keys or the user's text.
    """
    if isinstance(exc, TimeoutError | ModelTimeoutError | ModelRequestTimeout):
        return AssistantTimeoutError("the model did not answer in time")
    if isinstance(exc, ModelAuthenticationError):
        return AssistantProviderError("the model provider rejected the credentials")
    if isinstance(exc, ModelHTTPError):
        return AssistantProviderError(f"the model provider answered HTTP {exc.status_code}")
    if isinstance(exc, ModelConnectionError | httpx.TransportError | ConnectionError):
        return AssistantProviderError("could not connect to the model provider")
    if isinstance(exc, ModelAPIError):
        return AssistantProviderError(f"the model provider request failed ({type(exc).__name__})")
    if isinstance(exc, UsageLimitExceeded):
        return AssistantProviderError("the model exceeded the request limit for one reply")
    if isinstance(exc, UnexpectedModelBehavior):
        return AssistantProviderError("the model returned an unexpected response")
    if isinstance(exc, FallbackExceptionGroup):
        return AssistantProviderError("every configured model failed")
    if isinstance(exc, UserError):
        return AssistantProviderError("the model is not configured correctly")
    if _is_openai_error(exc):
        return AssistantProviderError("the model provider request failed")
    return None


def _is_openai_error(exc: BaseException) -> bool:
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency of the extras
        return False
    return isinstance(exc, openai.OpenAIError)


def with_message(deps: AssistantDeps, message: str) -> AssistantDeps:
    # tools such as save_pasted_alignment read the message from deps
    return deps if deps.current_message else dataclasses.replace(deps, current_message=message)


def _model_settings(settings: Settings) -> ModelSettings:
    model_settings = ModelSettings()
    if settings.temperature is not None:
        model_settings["temperature"] = settings.temperature
    if settings.max_output_tokens is not None:
        model_settings["max_tokens"] = settings.max_output_tokens
    return model_settings


# -- turning a run into the stored reply


def _reply_from(result: AgentRunResult[str]) -> AssistantReply:
    return reply_from_messages(_without_instructions(result.new_messages()), result.output)


def reply_from_messages(new: Sequence[ModelMessage], output: str) -> AssistantReply:
    """The reply to store from a run's new messages (instructions left out) and its output."""
    return AssistantReply(
        text=_reply_text(new) or output,
        tool_events=tool_events(new),
        model_messages=ModelMessagesTypeAdapter.dump_json(list(new)).decode(),
        model_chars=messages_chars(new),
    )


def _without_instructions(messages: Sequence[ModelMessage]) -> list[ModelMessage]:
    # the system prompt is re-sent on every run; storing it per turn only bloats history
    return [
        dataclasses.replace(m, instructions=None) if isinstance(m, ModelRequest) else m
        for m in messages
    ]


def _reply_text(messages: Sequence[ModelMessage]) -> str:
    texts = [
        part.content
        for message in messages
        if isinstance(message, ModelResponse)
        for part in message.parts
        if isinstance(part, TextPart) and part.content
    ]
    return "\n\n".join(texts)


def tool_events(messages: Sequence[ModelMessage]) -> list[ToolEvent]:
    """The turn's tool calls and results, in order."""
    events: list[ToolEvent] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                events.append(call_event(part))
            elif isinstance(part, ToolReturnPart):
                events.append(result_event(part))
    return events


def call_event(part: ToolCallPart) -> ToolEvent:
    return ToolEvent("tool_call", part.tool_name, part.tool_call_id, part.args_as_dict())


def result_event(part: ToolReturnPart) -> ToolEvent:
    payload: Any = to_jsonable_python(part.content, fallback=str)
    return ToolEvent("tool_result", part.tool_name, part.tool_call_id, payload)


class _TextJoiner:
    """Streams text parts joined exactly as `_reply_text` joins them (blank line between)."""

    def __init__(self) -> None:
        self.emitted = False
        self.separator_due = False

    def start_part(self) -> None:
        self.separator_due = self.emitted

    def text(self, chunk: str) -> str:
        if not chunk:
            return ""
        prefix = "\n\n" if self.separator_due else ""
        self.separator_due = False
        self.emitted = True
        return prefix + chunk


def _translate(event: object, texts: _TextJoiner) -> list[StreamEvent]:
    if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
        texts.start_part()
        chunk = texts.text(event.part.content)
        return [TextDelta(chunk)] if chunk else []
    if isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
        chunk = texts.text(event.delta.content_delta)
        return [TextDelta(chunk)] if chunk else []
    if isinstance(event, FunctionToolCallEvent):
        return [call_event(event.part)]
    if isinstance(event, FunctionToolResultEvent):
        return [result_event(event.part)]
    return []


# -- titles


def derive_title(first_message: str) -> str:
    """A title from the first message: its words, trimmed to 80 characters."""
    if extract_alignment(first_message) is not None:
        return "Pasted alignment"
    text = " ".join(first_message.split())
    if not text:
        return "New conversation"
    if len(text) <= TITLE_MAX_CHARS:
        return text
    cut = text[: TITLE_MAX_CHARS - 1]
    if " " in cut[TITLE_MAX_CHARS // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


def _clean_title(text: str) -> str:
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^(title\s*:\s*)", "", line.strip(), flags=re.IGNORECASE)
    line = line.strip(" \"'`*#").rstrip(".")
    return derive_title(line) if line else ""


# -- choosing the model


def resolve_model(settings: Settings) -> tuple[Model, str]:
    """The Pydantic AI model for `settings.model`, and its description.

    With a base URL (DATAMONKEY_CHAT_OPENAI_BASE_URL, or OPENAI_BASE_URL) and an
    OpenAI-style provider, the model is spoken to through the OpenAI chat API there.
    Raises UserError/ValueError when the model cannot be set up (e.g. a missing key).
    """
    spec = (settings.model or "").strip()
    if not spec:
        raise ValueError("no model configured")
    provider, _, name = spec.partition(":")
    if not name:
        provider, name = "", spec
    provider = PROVIDER_ALIASES.get(provider, provider)
    base_url = settings.openai_base_url or os.environ.get("OPENAI_BASE_URL")
    if base_url and provider not in OPENAI_COMPATIBLE and not _known_provider(provider):
        provider, name = "", spec  # e.g. "llama3.1:8b": the colon is part of the model name
    if base_url and provider in OPENAI_COMPATIBLE:
        return _openai_compatible(name, base_url), f"openai-compatible:{name}"
    if not provider:
        raise ValueError(f"model {spec!r} has no provider prefix and no base URL is set")
    normalized = f"{provider}:{name}"
    return infer_model(normalized), normalized


def _known_provider(provider: str) -> bool:
    from pydantic_ai.providers import infer_provider_class

    try:
        infer_provider_class(provider)
    except ValueError:
        return False
    return True


def _openai_compatible(name: str, base_url: str) -> Model:
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    api_key = os.environ.get("OPENAI_API_KEY") or LOCAL_API_KEY
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=base_url, api_key=api_key))


def build_assistant(settings: Settings) -> Assistant:
    """The assistant for these settings: the offline assistant unless a model is configured.

    A configured model that cannot be set up (unknown provider, missing API key) does not
    stop the server: health reports it unhealthy and replies fail with a clear 502 cause.
    """
    if not settings.model:
        # imported here: the offline assistant is built on this module's pipeline
        from datamonkey_chat.assistant.offline_direct import OfflineAssistant

        return OfflineAssistant(settings)
    try:
        model, description = resolve_model(settings)
    except (UserError, ValueError) as exc:
        problem = f"model {settings.model!r} could not be set up: {_setup_problem(exc)}"
        logger.error("%s", problem)
        return PydanticAIAssistant(
            None, settings=settings, description=settings.model, config_problem=problem
        )
    return PydanticAIAssistant(model, settings=settings, description=description)


def _setup_problem(exc: Exception) -> str:
    # Pydantic AI's setup messages name env variables, never their values; keep the first sentence
    message = str(exc).split(". ")[0].strip()
    return message[:200] or type(exc).__name__
