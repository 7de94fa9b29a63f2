"""Wire models of the Chat contract (names match the contract's schemas) and our extensions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr


class Role(StrEnum):
    user = "user"
    assistant = "assistant"


class ChatMessage(BaseModel):
    role: Role
    content: str
    timestamp: int | None = Field(default=None, description="Unix time in milliseconds")
    # Extension (additive): the tool calls and results behind an assistant message.
    tool_events: list[dict[str, Any]] | None = Field(
        default=None, description="Extension: tool calls and results behind this reply"
    )
    # Extension (additive): only in pages (`limit`/`cursor`), where the page needs it.
    id: int | None = Field(
        default=None,
        description="Extension, in paged answers: the message's position in its conversation",
    )


class ChatConversation(BaseModel):
    id: str
    title: str | None = None
    created: int = Field(description="Unix time in milliseconds")
    updated: int = Field(description="Unix time in milliseconds")
    messages: list[ChatMessage] | None = None


class CreateConversationRequest(BaseModel):
    title: StrictStr | None = None


class SendConversationMessageRequest(BaseModel):
    message: StrictStr


class RenameConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: StrictStr = Field(min_length=1, max_length=200)


NEXT_CURSOR_DOC = (
    "Extension, in paged answers (`limit`/`cursor`): pass it as `cursor` for the next, older "
    "page; null when there is none"
)


class ListUserConversations200Response(BaseModel):
    conversations: list[ChatConversation]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR_DOC)


class GetConversationMessages200Response(BaseModel):
    messages: list[ChatMessage]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR_DOC)


class SendConversationMessage200Response(BaseModel):
    message: ChatMessage


class UnauthorizedError(BaseModel):
    code: int = 401
    message: str


class ForbiddenError(BaseModel):
    code: int = 403
    message: str


class NotFoundError(BaseModel):
    error: str
    status: int = 404


class ServerError(BaseModel):
    error: str | None = None
    code: str | None = None
    details: str | None = None


class HealthResponse(BaseModel):
    status: str
    details: dict[str, str]


class DataProblem(BaseModel):
    code: str
    message: str
    severity: str | None = None
    sequence: str | None = None
    position: int | None = Field(default=None, description="1-based alignment column")
    codon: int | None = None


class ValidationFailed(BaseModel):
    """422: the data cannot be used (upload) or does not suit the method (job start)."""

    error: str
    code: str
    details: str
    problems: list[DataProblem]


DATA_PROBLEMS_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationFailed, "description": "The data has problems; each is listed"}
}
