"""The caller's session (an extension): ending it, so its token is refused everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from datamonkey_chat.api.deps import TOKEN_HEADER_DOC, authenticate, session_service
from datamonkey_chat.api.routes.chat import UNAUTHORIZED

router = APIRouter(prefix="/session", tags=["Sessions"])


@router.delete(
    "",
    operation_id="endSession",
    openapi_extra=TOKEN_HEADER_DOC,  # read by authenticate: no body, so no 400 to document
    summary="End the caller's session (log out)",
    description="The session's token is refused from now on, with 401, by every server "
    "process. The conversations, datasets and jobs of the session stay stored but can no "
    "longer be reached. A request without a valid token that starts sessions (creating a "
    "conversation, uploading) starts a new one, as it would for any unknown token.",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The session has ended"}, **UNAUTHORIZED},
)
async def end_session(request: Request) -> Response:
    user_id = await authenticate(request)
    await session_service(request).end(user_id)
    return Response(status_code=204)
