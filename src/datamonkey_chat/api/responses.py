"""JSON responses encoded with orjson.

The standard library's encoder was the largest single cost of reading a conversation whose
assistant messages carry tool results. orjson writes the same compact UTF-8 JSON as
Starlette's JSONResponse, several times faster. Differences: NaN and infinities become
null instead of failing the request.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
