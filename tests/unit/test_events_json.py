"""How tool events are stored: orjson, or the standard library's JSON for what orjson
refuses (a lone surrogate, which a model's tool arguments can carry); both read back the
same."""

import json

from datamonkey_chat.domain.conversations import _events_json

EVENTS = [
    {"type": "tool_call", "tool_name": "describe_method", "payload": {"name": "FEL"}},
    {"type": "tool_result", "tool_name": "describe_method", "payload": {"ω": 1.5, "n": [1, 2]}},
]


def test_events_read_back_as_written() -> None:
    stored = _events_json(EVENTS)
    assert json.loads(stored) == EVENTS
    assert "ω" in stored  # orjson's UTF-8, not the standard library's \\u escapes


def test_a_lone_surrogate_is_stored_escaped() -> None:
    events = [{"type": "tool_call", "tool_name": "start_analysis", "payload": {"x": "a\ud800"}}]
    stored = _events_json(events)
    assert "\\ud800" in stored and stored.isascii()
    assert json.loads(stored) == events
