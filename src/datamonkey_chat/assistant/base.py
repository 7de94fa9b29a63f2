"""The narrow interface between the conversation service and whatever model answers.

The routes and the conversation service only ever see these types: history and the
new message go in, a reply (or a stream of events ending in one) comes out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from datamonkey_chat.assistant.ports import AnalysesPort


@dataclass(frozen=True)
class StoredTurn:
    """One past exchange as storage keeps it: the user's text and the assistant's reply.

    `model_messages` is the assistant's own JSON record of the turn (tool calls and
    their results included), when it has one; it lets the model see its earlier
    tool use. Older or foreign turns may have None and are replayed as plain text.
    """

    user_text: str
    reply_text: str
    model_messages: str | None = None
    model_chars: int | None = None  # what `model_messages` costs in the context budget


@dataclass(frozen=True)
class ToolEvent:
    """A tool call or its result, recorded beside the turn (for the page and history)."""

    kind: Literal["tool_call", "tool_result"]
    tool_name: str
    tool_call_id: str
    payload: Any  # call arguments, or the tool's return value (JSON-able)

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "tool_name": self.tool_name,
            "tool_call_id": self.tool_call_id,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class AssistantReply:
    text: str
    tool_events: list[ToolEvent] = field(default_factory=list)
    model_messages: str | None = None  # JSON of this turn's messages, stored for history
    model_chars: int | None = None  # their size in the context budget (history.messages_chars)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReplyDone:
    reply: AssistantReply


StreamEvent = TextDelta | ToolEvent | ReplyDone


@dataclass
class AssistantDeps:
    """Who is asking, handed to tools through Pydantic AI's RunContext, never the prompt.

    `analyses` is the analyses service (datasets and jobs) when the server has one, seen
    through the assistant's port, so the assistant package does not import the service.
    """

    user_id: str
    conversation_id: str
    current_message: str = ""  # the user's new message (tools may read a pasted alignment)
    analyses: AnalysesPort | None = None


class AssistantError(Exception):
    """The model could not produce a reply. `cause` is safe to show: no secrets."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class AssistantProviderError(AssistantError):
    """The model provider failed (HTTP error, bad response, refused request): 502."""


class AssistantTimeoutError(AssistantError):
    """No reply within the configured time: 504."""


class Assistant(Protocol):
    """What the conversation service needs from an assistant."""

    @property
    def description(self) -> str:
        """Human-readable name of the model in use (for health and logs)."""
        ...

    @property
    def replays_records(self) -> bool:
        """Whether replies need the history's records (`StoredTurn.model_messages`); without,
        turns come with their texts and sizes only, which saves reading the records."""
        ...

    async def reply(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AssistantReply:
        """Answer `message` given `history`; raise AssistantError subclasses on failure."""
        ...

    def stream(
        self, history: list[StoredTurn], message: str, deps: AssistantDeps
    ) -> AsyncIterator[StreamEvent]:
        """Yield TextDelta / ToolEvent items, then exactly one ReplyDone, or raise."""
        ...

    async def title(self, first_message: str, first_reply: str) -> str:
        """A short conversation title (<= 80 chars) for a conversation's first turn."""
        ...

    async def health(self) -> str:
        """'healthy', 'unhealthy' or 'unknown' (never calls a paid model)."""
        ...
