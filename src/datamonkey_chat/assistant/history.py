"""Stored turns -> Pydantic AI messages, trimmed to the context budget by whole turns."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from pydantic import ValidationError
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

from datamonkey_chat.assistant.base import StoredTurn

logger = logging.getLogger(__name__)

__all__ = [
    "history_messages",
    "kept_turns",
    "messages_chars",
    "turn_chars",
    "turn_messages",
]


def turn_messages(turn: StoredTurn) -> list[ModelMessage]:
    """The turn as the model saw it (tool calls included) when recorded, else plain text."""
    if turn.model_messages:
        recorded = _recorded_messages(turn.model_messages)
        if recorded is not None:
            return recorded
    return _text_messages(turn)


def turn_chars(turn: StoredTurn) -> int:
    """What the turn costs in the context budget: the size of its record, as stored with it
    (`messages_chars` when it was written), else measured from the record or the texts."""
    if turn.model_chars is not None:
        return turn.model_chars
    return messages_chars(turn_messages(turn))


def _recorded_messages(record: str) -> list[ModelMessage] | None:
    try:
        return list(ModelMessagesTypeAdapter.validate_json(record))
    except (ValidationError, ValueError):
        # a record from another version: the text is still worth keeping
        logger.warning("stored model_messages could not be read; replaying the turn as text")
        return None


def _text_messages(turn: StoredTurn) -> list[ModelMessage]:
    return [
        ModelRequest(parts=[UserPromptPart(content=turn.user_text)]),
        ModelResponse(parts=[TextPart(content=turn.reply_text)]),
    ]


def messages_chars(messages: Sequence[ModelMessage]) -> int:
    """Characters of content the model would read (metadata such as usage excluded)."""
    total = 0
    for message in messages:
        for part in message.parts:
            if isinstance(part, UserPromptPart | TextPart) and isinstance(part.content, str):
                total += len(part.content)
            elif isinstance(part, ToolCallPart):
                total += len(part.tool_name) + len(part.args_as_json_str())
            elif isinstance(part, ToolReturnPart):
                total += len(part.tool_name) + len(
                    json.dumps(part.model_response_object(), default=str)
                )
    return total


def kept_turns(
    history: Sequence[StoredTurn], budget_chars: int, *, reserve_chars: int = 0
) -> list[StoredTurn]:
    """The newest turns of `history` that fit in `budget_chars - reserve_chars`, oldest first:
    the turns `history_messages` keeps, measured without parsing them again. The oldest whole
    turns go first, so a tool call is never separated from its result."""
    budget = max(0, budget_chars - reserve_chars)
    kept: list[StoredTurn] = []
    used = 0
    for turn in reversed(history):
        size = turn_chars(turn)
        if used + size > budget:
            break
        kept.append(turn)
        used += size
    kept.reverse()
    return kept


def history_messages(
    history: Sequence[StoredTurn], budget_chars: int, *, reserve_chars: int = 0
) -> list[ModelMessage]:
    """History for the model, oldest first, within `budget_chars - reserve_chars`.

    The turns are `kept_turns`: read newest first and only until the budget is spent, so
    older turns are never parsed, whatever the history's length.
    """
    return [
        message
        for turn in kept_turns(history, budget_chars, reserve_chars=reserve_chars)
        for message in turn_messages(turn)
    ]
