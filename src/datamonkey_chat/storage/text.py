"""Text a database can store: PostgreSQL refuses NUL in `text` columns; SQLite (and any
UTF-8 encoder) refuses lone surrogates, which JSON can carry (`"\\ud800"` decodes to one).
Every other code point is stored as it came."""

from __future__ import annotations

import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_reason(text: str) -> str | None:
    """Why `text` cannot be stored, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000), which cannot be stored"
    return f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not valid Unicode"


def storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def scrub(text: str) -> str:
    """Replace what cannot be stored with U+FFFD: for text we produce, not text we refuse."""
    return _UNSTORABLE.sub("\ufffd", text)
