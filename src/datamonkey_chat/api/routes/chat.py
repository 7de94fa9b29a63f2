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
from datamonkey_chat.domain.paging import MAX_PAGE_SIZE, page_size

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


# Paging (extension): the contract's list and messages operations answer pages when given
# `limit` or `cursor`, and exactly as before without them. The parameters are documented
# beside the operation (`x-extension-parameters`), not in it, so that the client generated
# from our document stays the contract's.
PAGE_PARAMETERS = ("limit", "cursor")
TOOL_PAYLOADS_FULL = "full"
ID_KEYS = frozenset({"id", "method", "status"})


def _query_parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def paging_doc(what: str, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """`openapi_extra` for a paged contract operation: the token header, and the paging
    parameters and their 400 as extensions beside the operation."""
    return {
        **TOKEN_HEADER_DOC,
        "x-extension-parameters": [
            _query_parameter(
                "limit",
                f"Extension: answer one page of at most this many {what} (newest first among "
                "pages) with `next_cursor`; without `limit` and `cursor` the answer is the "
                f"contract's, unpaged. Default 50 when only `cursor` is given.",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            ),
            _query_parameter(
                "cursor",
                "Extension: the `next_cursor` of the previous page (opaque; valid only for "
                "the user it was issued to and the same list).",
                {"type": "string"},
            ),
            *(extra or []),
        ],
        "x-extension-responses": {
            "400": {
                "description": "Extension: bad `limit` or `cursor`",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ServerError"}}
                },
            }
        },
    }


TOOL_PAYLOADS_PARAMETER = _query_parameter(
    "tool_payloads",
    "Extension, with paging: `full` sends each tool event's whole payload; by default a "
    "page carries only the ids in them (`*_id`, `id`, `method`, `status`).",
    {"type": "string", "enum": [TOOL_PAYLOADS_FULL, "compact"]},
)


def compact_payload(payload: Any) -> Any:
    """A tool payload reduced to what the page needs: its ids, method and status."""
    if isinstance(payload, list):
        return [compact_payload(item) for item in payload if isinstance(item, dict)]
    if not isinstance(payload, dict):
        return None
    kept: dict[str, Any] = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            inner = compact_payload(value)
            if inner:
                kept[key] = inner
        elif (key in ID_KEYS or key.endswith("_id")) and isinstance(value, str | int):
            kept[key] = value
    return kept


def paged_message_json(message: Message, full_payloads: bool) -> dict[str, Any]:
    body = message_json(message)
    body["id"] = message.seq
    if message.tool_events and not full_payloads:
        body["tool_events"] = [
            {**event, "payload": compact_payload(event.get("payload"))}
            for event in message.tool_events
        ]
    return body


def _paged(request: Request) -> bool:
    params = request.query_params
    return any(name in params for name in PAGE_PARAMETERS)


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
    openapi_extra=paging_doc("conversations"),
    summary="List conversations for the authenticated user",
    response_model=ListUserConversations200Response,
    responses={200: {"description": "List of user's conversations"}, **UNAUTHORIZED},
)
async def list_user_conversations(request: Request) -> Response:
    user_id = await authenticate(request)
    conversations = conversation_service(request)
    if _paged(request):
        params = request.query_params
        page = await conversations.conversation_page(
            user_id, page_size(params.get("limit")), params.get("cursor")
        )
        return JSONResponse(
            {
                "conversations": [conversation_json(c) for c in page.items],
                "next_cursor": page.next_cursor,
            }
        )
    items = await conversations.list_for_user(user_id)
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
    openapi_extra=paging_doc("messages", [TOOL_PAYLOADS_PARAMETER]),
    summary="Get messages from a conversation",
    response_model=GetConversationMessages200Response,
    responses={200: {"description": "List of conversation messages"}, **OWNED},
)
async def get_conversation_messages(
    request: Request,
    conversationId: str,  # noqa: N803
) -> Response:
    user_id = await authenticate(request)
    conversations = conversation_service(request)
    if _paged(request):
        params = request.query_params
        full = params.get("tool_payloads") == TOOL_PAYLOADS_FULL
        page = await conversations.message_page(
            user_id, conversationId, page_size(params.get("limit")), params.get("cursor")
        )
        return JSONResponse(
            {
                "messages": [paged_message_json(m, full) for m in page.items],
                "next_cursor": page.next_cursor,
            }
        )
    messages = await conversations.messages(user_id, conversationId)
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
