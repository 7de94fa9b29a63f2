"""Opaque page cursors, bound to the user they were issued to.

A cursor is the position after the last item of a page (a message's seq, or a conversation's
(updated_ms, id)), with the scope it belongs to, signed with an HMAC over the user id. A
cursor that was altered, belongs to another conversation or list, or was issued to another
user does not verify and is answered 400: it can never reveal or skip to anyone's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from datamonkey_chat.domain.errors import InvalidInputError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_MAC_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    def __init__(self, secret: str) -> None:
        # A key of its own, derived from the session secret: cursors never sign tokens.
        self._key = hashlib.sha256(b"datamonkey-chat page cursor\0" + secret.encode()).digest()

    def _mac(self, user_id: str, body: bytes) -> bytes:
        message = user_id.encode() + b"\0" + body
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, user_id: str, scope: str, position: list[Any]) -> str:
        body = json.dumps([scope, *position], separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(user_id, body))}"

    def decode(self, user_id: str, scope: str, cursor: str) -> list[Any]:
        """The position a cursor holds; InvalidInputError unless it is this user's, for `scope`."""
        try:
            body_text, mac_text = cursor.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise _bad_cursor() from None
        if not hmac.compare_digest(mac, self._mac(user_id, body)):
            raise _bad_cursor()
        decoded = json.loads(body)
        if not isinstance(decoded, list) or not decoded or decoded[0] != scope:
            raise _bad_cursor()
        return decoded[1:]


def _bad_cursor() -> InvalidInputError:
    return InvalidInputError("cursor is not valid here: use the next_cursor of a previous page")


def page_size(raw: str | None) -> int:
    """The `limit` query parameter: 1..MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE when absent."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
    return int(raw)
