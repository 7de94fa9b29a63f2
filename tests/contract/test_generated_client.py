"""The contract test (issue 2, "How it is checked").

From the OpenAPI document the running server serves, generate the `python` client
(`library=asyncio, packageName=openapi_client`), require its `docs/ChatApi.md` to be
`../shared/contract/ChatApi.md` byte for byte, install it, and run every example of the
contract against the live server. Then a few things the examples do not show: the session
header, error bodies parsed into `e.data`, and the assistant's reply.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.contract.contract_docs import contract_file, parse_chat_api
from tests.contract.generated_client import (
    GeneratedClient,
    failure_line,
    placeholder_values,
    printed_repr_field,
    run_example,
    runnable_example,
    success_line,
)

pytestmark = pytest.mark.contract

OPERATIONS = (
    "create_conversation",
    "delete_conversation",
    "get_conversation",
    "get_conversation_messages",
    "list_user_conversations",
    "send_conversation_message",
)
MESSAGE = "Hello! Which analyses can you run?"


@dataclass(frozen=True)
class Session:
    token: str
    conversation_id: str


def new_session(api_url: str, *, with_turn: bool = False) -> Session:
    """A fresh user with one conversation (plain HTTP, independent of the generated client)."""
    with httpx.Client(base_url=api_url, timeout=120) as http:
        created = http.post("/chat", json={})
        assert created.status_code == 201, created.text
        token = created.headers["X-Session-Token"]
        conversation_id = created.json()["id"]
        if with_turn:
            sent = http.post(
                f"/chat/{conversation_id}/messages",
                json={"message": MESSAGE},
                headers={"user_token": token},
            )
            assert sent.status_code == 200, sent.text
    return Session(token, conversation_id)


def test_generated_chat_api_md_is_the_contract(generated_client: GeneratedClient) -> None:
    expected = contract_file().read_text()
    actual = (generated_client.source / "docs" / "ChatApi.md").read_text()
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile="shared/contract/ChatApi.md",
            tofile="generated docs/ChatApi.md",
        )
        pytest.fail("the generated ChatApi.md differs from the contract:\n" + "".join(diff))


def test_the_contract_documents_the_six_operations() -> None:
    assert tuple(sorted(parse_chat_api(contract_file().read_text()))) == OPERATIONS


@pytest.mark.parametrize("operation", OPERATIONS)
def test_contract_example_runs(
    operation: str, generated_client: GeneratedClient, api_url: str
) -> None:
    example = parse_chat_api(contract_file().read_text())[operation].example
    session = new_session(api_url, with_turn=operation == "get_conversation_messages")
    values = placeholder_values(operation, session.token, session.conversation_id, MESSAGE)
    script = runnable_example(example, api_url, values)

    run = run_example(script, generated_client.site, generated_client.workdir, operation)

    assert run.returncode == 0, run.report()
    assert failure_line(operation) not in run.stdout, run.report()
    with httpx.Client(base_url=api_url, headers={"user_token": session.token}) as http:
        if operation == "delete_conversation":
            assert http.get(f"/chat/{session.conversation_id}").status_code == 404
            return
        assert success_line(operation) in run.stdout, run.report()
        if operation == "create_conversation":
            # Created for the token's user: no new session, two conversations now.
            assert len(http.get("/chat").json()["conversations"]) == 2
        elif operation in ("get_conversation", "list_user_conversations"):
            assert session.conversation_id in run.stdout, run.report()
        elif operation == "get_conversation_messages":
            assert "role='user'" in run.stdout and "role='assistant'" in run.stdout, run.report()
        elif operation == "send_conversation_message":
            assert printed_repr_field(run.stdout, "role") == "assistant", run.report()


# --- With the generated client, in this process -------------------------------------------


def chat_api(openapi_client: ModuleType, api_url: str) -> Any:
    configuration = openapi_client.Configuration(host=api_url)
    return openapi_client.ApiClient(configuration)


async def test_create_without_token_returns_the_session_header_in_exact_case(
    openapi_client: ModuleType, api_url: str
) -> None:
    async with chat_api(openapi_client, api_url) as api_client:
        api = openapi_client.ChatApi(api_client)
        response = await api.create_conversation_with_http_info()
        assert response.status_code == 201
        assert isinstance(response.data, openapi_client.ChatConversation)
        headers = dict(response.headers)  # as a plain, case-sensitive dict
        assert "X-Session-Token" in headers, (
            f"response header names as sent: {list(headers)}; the client's users read "
            "headers['X-Session-Token'] (uvicorn's httptools protocol lower-cases names, h11 "
            "keeps them)"
        )
        token = headers["X-Session-Token"]
        assert token.count(".") == 2  # a JWT
        assert "X-Session-Token" in response.headers.get("Access-Control-Expose-Headers", "")

        again = await api.create_conversation_with_http_info(
            user_token=token,
            create_conversation_request=openapi_client.CreateConversationRequest(title="Two"),
        )
        assert again.status_code == 201
        assert again.data.title == "Two"
        assert not any(name.lower() == "x-session-token" for name in dict(again.headers))

        listed = await api.list_user_conversations(token)
        ids = [c.id for c in listed.conversations]
        assert ids == [again.data.id, response.data.id]  # newest-updated first


async def test_error_bodies_parse_into_e_data(openapi_client: ModuleType, api_url: str) -> None:
    owner = new_session(api_url)
    intruder = new_session(api_url)
    exceptions = openapi_client.exceptions
    async with chat_api(openapi_client, api_url) as api_client:
        api = openapi_client.ChatApi(api_client)

        with pytest.raises(exceptions.UnauthorizedException) as unauthorized:
            await api.list_user_conversations("not-a-token")
        assert isinstance(unauthorized.value.data, openapi_client.UnauthorizedError)
        assert unauthorized.value.data.code == 401 and unauthorized.value.data.message

        with pytest.raises(exceptions.ForbiddenException) as forbidden:
            await api.get_conversation(owner.conversation_id, intruder.token)
        assert isinstance(forbidden.value.data, openapi_client.ForbiddenError)
        assert forbidden.value.data.code == 403 and forbidden.value.data.message

        with pytest.raises(exceptions.NotFoundException) as not_found:
            await api.get_conversation_messages("no-such-conversation", owner.token)
        assert isinstance(not_found.value.data, openapi_client.NotFoundError)
        assert not_found.value.data.status == 404 and not_found.value.data.error

        with pytest.raises(exceptions.UnauthorizedException) as on_delete:
            await api.delete_conversation(owner.conversation_id, "not-a-token")
        assert isinstance(on_delete.value.data, openapi_client.UnauthorizedError)


async def test_send_returns_the_assistants_message(
    openapi_client: ModuleType, api_url: str
) -> None:
    session = new_session(api_url)
    async with chat_api(openapi_client, api_url) as api_client:
        api = openapi_client.ChatApi(api_client)
        request = openapi_client.SendConversationMessageRequest(message=MESSAGE)
        reply = await api.send_conversation_message(session.conversation_id, session.token, request)
        assert isinstance(reply, openapi_client.SendConversationMessage200Response)
        assert isinstance(reply.message, openapi_client.ChatMessage)
        assert reply.message.role == "assistant"
        assert reply.message.content.strip()
        assert isinstance(reply.message.timestamp, int)

        history = await api.get_conversation_messages(session.conversation_id, session.token)
        assert [(m.role, m.content) for m in history.messages] == [
            ("user", MESSAGE),
            ("assistant", reply.message.content),
        ]
        conversation = await api.get_conversation(session.conversation_id, session.token)
        assert [m.role for m in conversation.messages] == ["user", "assistant"]
        assert conversation.updated >= conversation.created
