"""Server-sent events for streamed replies (an extension: only with Accept: text/event-stream)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from datamonkey_chat.assistant.base import AssistantError, TextDelta, ToolEvent
from datamonkey_chat.domain.conversations import ConversationStreamEvent, ReplyStored
from datamonkey_chat.domain.errors import DomainError

log = logging.getLogger(__name__)


def wants_event_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _error_event(exc: Exception) -> bytes:
    # Imported here to keep one mapping of failures to status codes and bodies.
    from datamonkey_chat.api.errors import assistant_error_response, domain_error_response

    if isinstance(exc, AssistantError):
        response = assistant_error_response(exc)
    elif isinstance(exc, DomainError):
        response = domain_error_response(exc)
    else:
        log.exception("stream failed")
        return _event(
            "error",
            {
                "status": 500,
                "error": "Internal Server Error",
                "code": "internal_error",
                "details": type(exc).__name__,
            },
        )
    body = json.loads(bytes(response.body))
    return _event("error", {"status": response.status_code, **body})


async def _encode(events: AsyncIterator[ConversationStreamEvent]) -> AsyncIterator[bytes]:
    from datamonkey_chat.api.routes.chat import message_json

    try:
        async for event in events:
            if isinstance(event, TextDelta):
                yield _event("delta", {"text": event.text})
            elif isinstance(event, ToolEvent):
                yield _event(event.kind, event.as_dict())
            elif isinstance(event, ReplyStored):
                yield _event("done", {"message": message_json(event.message)})
    except Exception as exc:  # the status line is gone: report failures in-band
        yield _error_event(exc)


def reply_stream(events: AsyncIterator[ConversationStreamEvent]) -> StreamingResponse:
    return StreamingResponse(
        _encode(events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
