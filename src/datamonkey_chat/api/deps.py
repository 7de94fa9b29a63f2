"""Request dependencies: the services on app.state and the caller's identity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Header, Request

from datamonkey_chat.api.rate_limits import check_new_session
from datamonkey_chat.domain.conversations import ConversationService
from datamonkey_chat.domain.errors import UnauthorizedError
from datamonkey_chat.domain.sessions import SessionService

if TYPE_CHECKING:
    from datamonkey_chat.analyses.service import AnalysesService
    from datamonkey_chat.analyses.visualizations import VisualizationService

TOKEN_HEADER = "user_token"
SESSION_HEADER = "X-Session-Token"  # a new session's token, in upstream's exact case

# Declared optional so a missing token reaches our 401 (not FastAPI's 422); the
# OpenAPI document marks it required where the contract does (see api/openapi.py).
UserTokenHeader = Annotated[
    str | None,
    Header(alias=TOKEN_HEADER, convert_underscores=False, description="Token identifying the user"),
]

# The same header, for routes that read it themselves (`openapi_extra=TOKEN_HEADER_DOC`):
# the document is the same, and FastAPI's per-request handling of a declared parameter
# (20-45 µs in the benchmark's hot routes) is skipped.
TOKEN_HEADER_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": TOKEN_HEADER,
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Token identifying the user",
        }
    ]
}


def conversation_service(request: Request) -> ConversationService:
    service: ConversationService = request.app.state.conversations
    return service


def session_service(request: Request) -> SessionService:
    service: SessionService = request.app.state.sessions
    return service


def analyses(request: Request) -> AnalysesService:
    service: AnalysesService = request.app.state.analyses
    return service


def visualization_service(request: Request) -> VisualizationService:
    service: VisualizationService = request.app.state.analyses.visualizations
    return service


def bearer_token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def presented_token(request: Request) -> str | None:
    """The `user_token` header, else an `Authorization: Bearer` token. Never a query string."""
    return request.headers.get(TOKEN_HEADER) or bearer_token(request)


async def authenticate(request: Request) -> str:
    """The caller's user id; UnauthorizedError (401) for a missing, bad or unknown token.

    The Chat routes without a body call this directly, and document the header with
    `TOKEN_HEADER_DOC`, rather than going through `Depends` (`CurrentUser`): FastAPI
    resolves every dependency and declared header anew on each request, and that was the
    largest cost of a cached read in the benchmark. Routes with a body keep the
    dependency, which runs before the body is validated: a bad token is answered 401
    before a bad body 400.
    """
    return await session_service(request).authenticate(presented_token(request))


async def current_user(request: Request, user_token: UserTokenHeader = None) -> str:
    del user_token  # declared for the OpenAPI document; presented_token reads it
    return await authenticate(request)


async def user_or_new_session(request: Request) -> tuple[str, dict[str, str]]:
    """For operations that start a session when the token is missing, invalid or expired.

    Returns the user id and the response headers that hand a new session's token over
    (empty when the presented token was valid).
    """
    sessions = session_service(request)
    token = presented_token(request)
    if token:
        try:
            return await sessions.authenticate(token), {}
        except UnauthorizedError:
            pass
    await check_new_session(request)  # 429 past the limit of new sessions per address
    session = await sessions.create()
    headers = {SESSION_HEADER: session.token, "Access-Control-Expose-Headers": SESSION_HEADER}
    return session.user_id, headers


CurrentUser = Annotated[str, Depends(current_user)]
Analyses = Annotated["AnalysesService", Depends(analyses)]
Visualizations = Annotated["VisualizationService", Depends(visualization_service)]
