"""Pure ASGI middleware: access log lines and the exact case of X-Session-Token."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("datamonkey_chat.access")

# Starlette lower-cases header names; the generated client reads response headers from a
# case-sensitive dict, and upstream sends "X-Session-Token", so restore that spelling.
EXACT_HEADER_NAMES = {b"x-session-token": b"X-Session-Token"}


class WireMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_exact_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    (EXACT_HEADER_NAMES.get(name, name), value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_exact_headers)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            # Method, path, status and time only: never headers (tokens) or bodies (messages).
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)
