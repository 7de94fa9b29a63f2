"""The six Chat operations of the contract, plus rename and streaming beside them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request, Response

from datamonkey_chat.api import sse
from datamonkey_chat.api.deps import (
    SESSION_HEADER,
    TOKEN_HEADER_DOC,
    CurrentUser,
    authenticate,
    conversation_service,
    user_or_new_session,
)
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.schemas import (
    ChatConversation,
    CreateConversationRequest,
    ForbiddenError,
    GetConversationMessages200Response,
    ListUserConversations200Response,
    NotFoundError,
    RenameConversationRequest,
    SendConversationMessage200Response,
    SendConversationMessageRequest,
    ServerError,
    UnauthorizedError,
)
from datamonkey_chat.domain.conversations import Conversation, Message
from datamonkey_chat.domain.errors import InvalidInputError, TooLargeError

router = APIRouter(prefix="/chat", tags=["Chat"])
extensions = APIRouter(prefix="/chat", tags=["Chat extensions"])


Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {
    401: {"model": UnauthorizedError, "description": "Unauthorized - Invalid or missing user token"}
}
FORBIDDEN: Responses = {
    403: {"model": ForbiddenError, "description": "Forbidden - User does not own this conversation"}
}
NOT_FOUND: Responses = {404: {"model": NotFoundError, "description": "Conversation not found"}}
OWNED: Responses = {**UNAUTHORIZED, **FORBIDDEN, **NOT_FOUND}


def message_json(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "role": message.role,
        "content": message.content,
        "timestamp": message.timestamp,
    }
    if message.tool_events:
        body["tool_events"] = message.tool_events
    return body


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": conversation.id,
        "title": conversation.title,
        "created": conversation.created,
        "updated": conversation.updated,
    }
    if conversation.messages is not None:
        body["messages"] = [message_json(m) for m in conversation.messages]
    return body


@router.post(
    "",
    operation_id="createConversation",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="Create a new conversation",
    status_code=201,
    response_model=ChatConversation,
    responses={
        201: {
            "description": "Conversation created successfully. If no token was provided, a new "
            "session token is returned in the X-Session-Token response header.",
            "headers": {SESSION_HEADER: {"schema": {"type": "string"}}},
        },
        500: {
            "model": ServerError,
            "description": "Internal Server Error - Failed to create session or conversation",
        },
    },
)
async def create_conversation(
    request: Request,
    create_conversation_request: CreateConversationRequest | None = Body(default=None),
) -> Response:
    user_id, headers = await user_or_new_session(request)
    title = create_conversation_request.title if create_conversation_request else None
    conversation = await conversation_service(request).create(user_id, title)
    return JSONResponse(conversation_json(conversation), status_code=201, headers=headers)


@router.get(
    "",
    operation_id="listUserConversations",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="List conversations for the authenticated user",
    response_model=ListUserConversations200Response,
    responses={200: {"description": "List of user's conversations"}, **UNAUTHORIZED},
)
async def list_user_conversations(request: Request) -> Response:
    user_id = await authenticate(request)
    items = await conversation_service(request).list_for_user(user_id)
    return JSONResponse({"conversations": [conversation_json(c) for c in items]})


@router.get(
    "/{conversationId}",
    operation_id="getConversation",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="Get a conversation by ID",
    response_model=ChatConversation,
    responses={200: {"description": "Conversation details"}, **OWNED},
)
async def get_conversation(
    request: Request,
    conversationId: str,  # noqa: N803
) -> Response:
    user_id = await authenticate(request)
    conversation = await conversation_service(request).get(user_id, conversationId)
    return JSONResponse(conversation_json(conversation))


@router.delete(
    "/{conversationId}",
    operation_id="deleteConversation",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="Delete a conversation",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Conversation deleted"}, **OWNED},
)
async def delete_conversation(
    request: Request,
    conversationId: str,  # noqa: N803
) -> Response:
    user_id = await authenticate(request)
    await conversation_service(request).delete(user_id, conversationId)
    return Response(status_code=204)


@router.get(
    "/{conversationId}/messages",
    operation_id="getConversationMessages",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="Get messages from a conversation",
    response_model=GetConversationMessages200Response,
    responses={200: {"description": "List of conversation messages"}, **OWNED},
)
async def get_conversation_messages(
    request: Request,
    conversationId: str,  # noqa: N803
) -> Response:
    user_id = await authenticate(request)
    messages = await conversation_service(request).messages(user_id, conversationId)
    return JSONResponse({"messages": [message_json(m) for m in messages]})


@router.post(
    "/{conversationId}/messages",
    operation_id="sendConversationMessage",
    summary="Send a message to the conversation",
    response_model=SendConversationMessage200Response,
    responses={200: {"description": "AI response"}, **OWNED},
)
async def send_conversation_message(
    request: Request,
    conversationId: str,  # noqa: N803
    user_id: CurrentUser,  # a dependency, so a bad token is 401 before the body is checked
    send_conversation_message_request: SendConversationMessageRequest = Body(),
) -> Response:
    conversations = conversation_service(request)
    text = send_conversation_message_request.message
    _check_message(text, request.app.state.settings.max_message_bytes)
    if sse.wants_event_stream(request):
        await conversations.check_owner(user_id, conversationId)
        return sse.reply_stream(conversations.send_streaming(user_id, conversationId, text))
    message = await conversations.send(user_id, conversationId, text)
    return JSONResponse({"message": message_json(message)})


def _check_message(text: str, limit_bytes: int) -> None:
    if not text.strip():
        raise InvalidInputError("message must be a non-empty string")
    size = len(text.encode("utf-8"))
    if size > limit_bytes:
        raise TooLargeError(f"message is {size} bytes; the limit is {limit_bytes} bytes")


@extensions.patch(
    "/{conversationId}",
    operation_id="renameConversation",
    summary="Rename a conversation (extension)",
    response_model=ChatConversation,
    responses={200: {"description": "The renamed conversation"}, **OWNED},
)
async def rename_conversation(
    request: Request,
    conversationId: str,  # noqa: N803
    user_id: CurrentUser,  # a dependency, so a bad token is 401 before the body is checked
    body: RenameConversationRequest,
) -> Response:
    conversation = await conversation_service(request).rename(user_id, conversationId, body.title)
    return JSONResponse(conversation_json(conversation))
