"""The chat page: `/` and `/static/...` served from the package, under a strict CSP.

The page is plain static files (no build step at run time); its libraries (marked, DOMPurify,
Vega, Vega-Lite, vega-embed, vega-interpreter) are vendored into `web/static/vendor/` by
`web/vendor.sh`. Nothing loads from another origin, no script is inline, and charts use
Vega's CSP-safe expression interpreter, so the policy below needs no 'unsafe-*' source.
These routes stay out of the OpenAPI document: they are not part of the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, Response

from datamonkey_chat.api.responses import JSONResponse

STATIC_DIR = Path(__file__).resolve().parent.parent.parent / "web" / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Small files, changed by upgrades: revalidate every time (FileResponse sends ETags).
    "Cache-Control": "no-cache",
}

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}

router = APIRouter(include_in_schema=False)


def _file(path: Path) -> Response:
    media_type = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


def _not_found() -> Response:
    return JSONResponse(
        {"error": "Not Found", "status": 404}, status_code=404, headers=SECURITY_HEADERS
    )


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def index() -> Response:
    return _file(STATIC_DIR / "index.html")


@router.api_route("/favicon.ico", methods=["GET", "HEAD"], include_in_schema=False)
async def favicon() -> Response:
    return _file(STATIC_DIR / "favicon.svg")


@router.api_route("/static/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
async def static(path: str) -> Response:
    root = STATIC_DIR.resolve()
    candidate = (root / path).resolve()
    # Only regular files inside static/: no traversal, no directory listings, no dotfiles.
    if (
        not candidate.is_relative_to(root)
        or not candidate.is_file()
        or any(part.startswith(".") for part in candidate.relative_to(root).parts)
    ):
        return _not_found()
    return _file(candidate)


def install_docs(app: FastAPI, path: str) -> None:
    """Interactive API docs whose Swagger UI comes from static/vendor (works offline)."""

    @app.get(path, include_in_schema=False)
    async def api_docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=str(app.openapi_url),
            title=f"{app.title} - docs",
            swagger_js_url="/static/vendor/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui.css",
            swagger_favicon_url="/favicon.ico",
        )
