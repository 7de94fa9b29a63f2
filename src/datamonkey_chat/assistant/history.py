"""Stored turns -> Pydantic AI messages, trimmed to the context budget by whole turns."""

from __future__ import annotations

import hashlib
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
    "trim_turns",
    "turn_chars",
    "turn_messages",
]
# Sizes of recorded turns already measured, by a digest of their record: a turn is parsed to
# be measured once, not on every send that has it in its window (the records stay in the
# database; only the digest and a number are kept).
SIZE_CACHE_ENTRIES = 16384


def turn_messages(turn: StoredTurn) -> list[ModelMessage]:
    """The turn as the model saw it (tool calls included) when recorded, else plain text."""
    if turn.model_messages:
        recorded = _recorded_messages(turn.model_messages)
        if recorded is not None:
            return recorded
    return _text_messages(turn)


def turn_chars(turn: StoredTurn) -> int:
    """`messages_chars(turn_messages(turn))`; a recorded turn is parsed for it only once."""
    if not turn.model_messages:
        return messages_chars(_text_messages(turn))
    key = hashlib.blake2b(turn.model_messages.encode(), digest_size=16).digest()
    chars = _sizes.get(key)
    if chars is None:
        chars = messages_chars(turn_messages(turn))
        _sizes[key] = chars
        if len(_sizes) > SIZE_CACHE_ENTRIES:
            del _sizes[next(iter(_sizes))]  # the oldest measured
    return chars


_sizes: dict[bytes, int] = {}


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


def trim_turns(turns: Sequence[list[ModelMessage]], budget_chars: int) -> list[list[ModelMessage]]:
    """Keep the newest turns that fit in `budget_chars`; the oldest whole turns go first,
    so a tool call is never separated from its result."""
    kept: list[list[ModelMessage]] = []
    used = 0
    for messages in reversed(turns):
        size = messages_chars(messages)
        if used + size > budget_chars:
            break
        kept.append(messages)
        used += size
    kept.reverse()
    return kept


def kept_turns(
    history: Sequence[StoredTurn], budget_chars: int, *, reserve_chars: int = 0
) -> list[StoredTurn]:
    """The newest turns of `history` that fit in `budget_chars - reserve_chars`, oldest first:
    the turns `history_messages` keeps, measured without parsing them again."""
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

    The same whole-turn trimming as `trim_turns`, but turns are read newest first and only
    until the budget is spent: older turns are never parsed, whatever the history's length.
    """
    budget = max(0, budget_chars - reserve_chars)
    kept: list[list[ModelMessage]] = []
    used = 0
    for turn in reversed(history):
        messages = turn_messages(turn)
        size = messages_chars(messages)
        if used + size > budget:
            break
        kept.append(messages)
        used += size
    kept.reverse()
    return [message for messages in kept for message in messages]
