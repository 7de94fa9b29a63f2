"""The caller's session (an extension): ending it, so its token is refused everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from datamonkey_chat.api.deps import CurrentUser, session_service
from datamonkey_chat.api.routes.chat import UNAUTHORIZED

router = APIRouter(prefix="/session", tags=["Sessions"])


@router.delete(
    "",
    operation_id="endSession",
    summary="End the caller's session (log out)",
    description="The session's token is refused from now on, with 401, by every server "
    "process. The conversations, datasets and jobs of the session stay stored but can no "
    "longer be reached. A request without a valid token that starts sessions (creating a "
    "conversation, uploading) starts a new one, as it would for any unknown token.",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The session has ended"}, **UNAUTHORIZED},
)
async def end_session(request: Request, user_id: CurrentUser) -> Response:
    await session_service(request).end(user_id)
    return Response(status_code=204)
