"""Text a database can store, checked once where text enters: bad text is a 400, not a 500.

What the databases refuse is in storage/text.py; request models use api.schemas.StorableStr,
other entry points (upload meta, job options, tool arguments) these helpers.
"""

from __future__ import annotations

from typing import Any

from datamonkey_chat.domain.errors import InvalidInputError
from datamonkey_chat.storage.text import storable, unstorable_reason

__all__ = ["UnstorableTextError", "require_storable", "require_storable_json", "storable"]


class UnstorableTextError(InvalidInputError, ValueError):
    """Text with a character no database can store. A ValueError too, for pydantic and tools."""


def require_storable(text: str, field: str) -> str:
    """`text` itself, or UnstorableTextError naming the field (a 400 at the HTTP edge)."""
    reason = unstorable_reason(text)
    if reason is not None:
        raise UnstorableTextError(f"{field} {reason}")
    return text


def require_storable_json(value: Any, field: str) -> Any:
    """Like require_storable for every string (keys too) inside a JSON-like value."""
    pending: list[tuple[Any, str]] = [(value, field)]
    while pending:  # iterative: a deeply nested value cannot exhaust the stack
        item, where = pending.pop()
        if isinstance(item, str):
            require_storable(item, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str):
                    require_storable(key, f"{where} key")
                pending.append((child, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            pending.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return value
