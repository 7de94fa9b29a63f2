"""Our JSON response class writes what Starlette's would, for everything we send."""

from __future__ import annotations

import json
import math

from starlette.responses import JSONResponse as StarletteJSONResponse

from datamonkey_chat.api.responses import JSONResponse


def test_same_bytes_as_starlette_for_our_payloads() -> None:
    payload = {
        "id": "aZ09_-",
        "title": "Sélection positive — ω > 1 in 🐒 genes",
        "created": 1795715265248,
        "messages": [
            {"role": "assistant", "content": 'line\n"quoted"\ttab', "timestamp": 1},
            {"role": "user", "content": "", "tool_events": [{"p": 0.05, "ok": True, "x": None}]},
        ],
    }
    assert JSONResponse(payload).body == StarletteJSONResponse(payload).body
    assert json.loads(JSONResponse(payload).body) == payload


def test_non_string_keys_and_nan_do_not_fail_the_request() -> None:
    assert JSONResponse({1: "a"}).body == b'{"1":"a"}'
    assert JSONResponse({"rate": math.nan}).body == b'{"rate":null}'
