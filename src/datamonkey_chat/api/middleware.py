"""Pure ASGI middleware: access log lines, the exact case of X-Session-Token, upstream's
`pretty_print`, body limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datamonkey_chat.settings import Settings

access_log = logging.getLogger("datamonkey_chat.access")

# Starlette lower-cases header names; the generated client reads response headers from a
# case-sensitive dict, and upstream sends "X-Session-Token", so restore that spelling.
EXACT_HEADER_NAMES = {b"x-session-token": b"X-Session-Token"}

# Upstream's `pretty_print` query parameter, on every operation. Reads are hot: without the
# parameter the only cost is this substring test on the raw query string.
PRETTY_PRINT = b"pretty_print"
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})  # what FastAPI reads as a true boolean


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

        sender: Send = send_with_exact_headers
        if PRETTY_PRINT in scope["query_string"] and _wants_pretty(scope["query_string"]):
            sender = _pretty_json(send_with_exact_headers)
        try:
            await self.app(scope, receive, sender)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            # Method, path, status and time only: never headers (tokens) or bodies (messages).
            access_log.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)


def _wants_pretty(query: bytes) -> bool:
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return any(name == "pretty_print" and value.lower() in TRUE_WORDS for name, value in pairs)


def _pretty_json(send: Send) -> Send:
    """A sender that indents a JSON answer by 2 spaces (others pass unchanged)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def send_pretty(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            # A 413 closing the connection goes out at once, not after its lingering close.
            closing = headers.get(b"connection") == b"close"
            if headers.get(b"content-type", b"").startswith(b"application/json") and not closing:
                start = message  # held until the whole body is here
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
            except orjson.JSONDecodeError:
                pass  # not JSON after all: as it was
            length = str(len(body)).encode()
            start["headers"] = [
                (name, length if name == b"content-length" else value)
                for name, value in start.get("headers", [])
            ]
            await send(start)
            start = None
            message = {**message, "body": body}
        await send(message)

    return send_pretty


# ---------------------------------------------------------------- request body limits

NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # their routes never read a body


class BodyTooLargeError(Exception):
    """Raised into whoever reads a request body past its limit."""


class BodyLimitMiddleware:
    """Caps request bodies while they are read, answering 413 in the ServerError shape.

    A `Content-Length` over the route's limit is answered before any byte of the body is
    read; a body without one (chunked) is cut off as it streams past the limit. Uvicorn
    hands the body over in small pieces and stops reading the socket while they wait, so
    memory stays flat. The 413 closes the connection, after a short lingering close.
    GET, HEAD and OPTIONS (the hot read routes) pass straight through.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in NO_BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared, expects_continue = _body_headers(scope["headers"])
        if declared is not None and declared > limit:
            # A client waiting for "100 Continue" sends nothing more: no need to linger.
            await _refuse(limit, send, None if expects_continue else receive)
            return
        received = 0
        cut_off = responded = replaced = False

        async def limited_receive() -> Message:
            nonlocal received, cut_off
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    raise BodyTooLargeError(f"request body over {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal responded, replaced
            if replaced:
                return
            if cut_off and not responded:
                # Whatever the app made of the error (FastAPI says 400), the answer is 413.
                if message["type"] == "http.response.start":
                    responded = replaced = True
                    await _refuse(limit, send, receive)
                return
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except BodyTooLargeError:
            if responded:
                raise
            responded = True
            await _refuse(limit, send, receive)


def _body_headers(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, bool]:
    """Content-Length (None when absent) and whether the client expects 100-continue."""
    length, expects_continue = None, False
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                pass  # the HTTP server refuses such a request itself
        elif name == b"expect":
            expects_continue = value.lower() == b"100-continue"
    return length, expects_continue


# A lingering close, as nginx does: closing a socket with unread data makes the kernel reset
# the connection, and a client still sending may lose the 413 before reading it. So read and
# drop what it sends for a moment (bounded in time and bytes), then close.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 * 1024 * 1024


async def _refuse(limit: int, send: Send, receive: Receive | None) -> None:
    body = orjson.dumps(
        {
            "error": "Request too large",
            "code": "too_large",
            "details": f"The request body is over the limit of {limit} bytes",
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the client may still be sending: stop there
            ],
        }
    )
    # The whole answer is out with this message; the connection closes with the last one.
    await send({"type": "http.response.body", "body": body, "more_body": receive is not None})
    if receive is not None:
        await _linger(receive)
        await send({"type": "http.response.body", "body": b""})


async def _linger(receive: Receive) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    drained = 0
    while drained < LINGER_BYTES:
        try:
            message = await asyncio.wait_for(receive(), deadline - loop.time())
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body"):
            return
        drained += len(message.get("body", b""))


def body_limits(settings: Settings, api_prefix: str) -> Callable[[str], int]:
    """The body limit of each route: messages and uploads their own, the rest a small cap."""
    # JSON may escape each byte of a message into up to six ("\u0001"); the text's own limit
    # (413 too) is checked after parsing.
    message_limit = 6 * settings.max_message_bytes + 4096
    upload_limit = settings.max_upload_bytes + 64 * 1024  # multipart headers and `meta`
    uploads = f"{api_prefix}/datasets"
    chat = f"{api_prefix}/chat/"

    def limit_for(path: str) -> int:
        if path == uploads:
            return upload_limit
        if path.startswith(chat) and path.endswith("/messages"):
            return message_limit
        return settings.max_body_bytes

    return limit_for
