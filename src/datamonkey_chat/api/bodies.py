"""Request bodies that routes read themselves (so the service checks them in its own order
and words): one JSON object, or a client error, never a crash."""

from __future__ import annotations

import json
from typing import Any

NOT_JSON = "The request body is not valid JSON"
NOT_AN_OBJECT = "The request body must be a JSON object"


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def json_object(raw: bytes, *, strict: bool = False) -> dict[str, Any]:
    """`raw` as a JSON object; ValueError with the message for the client otherwise.
    Nesting deep enough to exhaust the parser's recursion is bad JSON too. `strict`:
    NaN and Infinity (which JSON does not have) are refused as well."""
    try:
        if strict:
            body = json.loads(raw, parse_constant=_refuse_constant)
        else:
            body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError(NOT_JSON) from None
    if not isinstance(body, dict):
        raise ValueError(NOT_AN_OBJECT)
    return body
