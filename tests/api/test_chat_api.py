"""The six contract operations over the real app, real database (SQLite and PostgreSQL)
and the default (offline) assistant."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import httpx
import jwt
import pytest

from datamonkey_chat.domain.sessions import SECRET_FILE_NAME
from datamonkey_chat.settings import Settings

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


async def new_session(client: httpx.AsyncClient) -> tuple[str, str]:
    response = await client.post("/chat", headers=JSON)
    assert response.status_code == 201
    return response.headers["X-Session-Token"], response.json()["id"]


def auth(token: str) -> dict[str, str]:
    return {**JSON, "user_token": token}


def secret_of(settings: Settings) -> str:
    return (settings.data_dir / SECRET_FILE_NAME).read_text().strip()


# --- create and sessions -------------------------------------------------------------


async def test_create_without_token_makes_session_and_returns_header(client: httpx.AsyncClient):
    response = await client.post("/chat", headers=JSON)
    assert response.status_code == 201
    body = response.json()
    # upstream's Hash, a letter first, 18 characters (about 104 random bits)
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9]{17}", body["id"])
    assert isinstance(body["created"], int) and body["created"] == body["updated"]
    assert abs(body["created"] - time.time() * 1000) < 60_000  # milliseconds, not seconds
    assert body["messages"] == []
    token = response.headers["X-Session-Token"]
    assert "X-Session-Token" in response.headers["Access-Control-Expose-Headers"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"sub", "iat", "exp"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 30 * 86400


@pytest.mark.parametrize(
    "body",
    [None, b"", b"{}", b'{"title": "Selection in HIV env"}'],
    ids=["no-body", "empty-body", "empty-object", "with-title"],
)
async def test_create_accepts_every_body_shape(client: httpx.AsyncClient, body: bytes | None):
    response = await client.post("/chat", headers=JSON, content=body)
    assert response.status_code == 201, response.text
    expected_title = "Selection in HIV env" if body and b"title" in body else None
    assert response.json()["title"] == expected_title


async def test_create_with_valid_token_reuses_session(client: httpx.AsyncClient):
    token, first_id = await new_session(client)
    response = await client.post("/chat", headers=auth(token), json={"title": "second"})
    assert response.status_code == 201
    assert "X-Session-Token" not in response.headers
    listed = await client.get("/chat", headers=auth(token))
    assert {c["id"] for c in listed.json()["conversations"]} == {first_id, response.json()["id"]}


async def test_create_with_bearer_token_reuses_session(client: httpx.AsyncClient):
    token, _ = await new_session(client)
    response = await client.post("/chat", headers={**JSON, "Authorization": f"Bearer {token}"})
    assert response.status_code == 201
    assert "X-Session-Token" not in response.headers


@pytest.mark.parametrize("bad", ["garbage", "a.b.c", ""])
async def test_create_with_invalid_token_makes_new_session(client: httpx.AsyncClient, bad: str):
    response = await client.post("/chat", headers=auth(bad))
    assert response.status_code == 201
    assert response.headers["X-Session-Token"]


async def test_create_with_expired_token_makes_new_session(
    client: httpx.AsyncClient, settings: Settings
):
    token, _ = await new_session(client)
    sub = jwt.decode(token, options={"verify_signature": False})["sub"]
    expired = jwt.encode({"sub": sub, "iat": 1, "exp": 2}, secret_of(settings), algorithm="HS256")
    response = await client.post("/chat", headers=auth(expired))
    assert response.status_code == 201
    new_token = response.headers["X-Session-Token"]
    assert jwt.decode(new_token, options={"verify_signature": False})["sub"] != sub


async def test_create_rejects_bad_title_type(client: httpx.AsyncClient):
    response = await client.post("/chat", headers=JSON, json={"title": 5})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


async def test_secret_survives_restart(make_settings, settings: Settings):
    from datamonkey_chat.api.app import create_app
    from tests.conftest import open_client

    async for client in open_client(create_app(settings)):
        token, conversation_id = await new_session(client)
    assert (settings.data_dir / SECRET_FILE_NAME).stat().st_mode & 0o777 == 0o600
    async for client in open_client(create_app(make_settings())):
        response = await client.get(f"/chat/{conversation_id}", headers=auth(token))
        assert response.status_code == 200


# --- 401 for every operation but create -------------------------------------------------

OPERATIONS = [
    ("GET", "/chat", None),
    ("GET", "/chat/{id}", None),
    ("DELETE", "/chat/{id}", None),
    ("GET", "/chat/{id}/messages", None),
    ("POST", "/chat/{id}/messages", {"message": "hello"}),
]


def forged_tokens(settings: Settings, real_token: str) -> dict[str, str]:
    claims = jwt.decode(real_token, options={"verify_signature": False})
    header_none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return {
        "missing": "",
        "malformed": "not-a-jwt",
        "wrong-secret": jwt.encode(claims, "x" * 64, algorithm="HS256"),
        "alg-none": f"{header_none}.{payload}.",
        "hs512": jwt.encode(claims, secret_of(settings), algorithm="HS512"),
        "expired": jwt.encode({**claims, "exp": 2, "iat": 1}, secret_of(settings), "HS256"),
        "no-exp": jwt.encode({"sub": claims["sub"], "iat": 1}, secret_of(settings), "HS256"),
        "unknown-user": jwt.encode(
            {**claims, "sub": "0" * 32}, secret_of(settings), algorithm="HS256"
        ),
    }


async def test_every_operation_answers_401_for_bad_tokens(
    client: httpx.AsyncClient, settings: Settings
):
    token, conversation_id = await new_session(client)
    for name, bad in forged_tokens(settings, token).items():
        for method, path, body in OPERATIONS:
            headers = auth(bad) if bad else JSON
            response = await client.request(
                method, path.format(id=conversation_id), headers=headers, json=body
            )
            assert response.status_code == 401, (name, method, path, response.text)
            error = response.json()
            assert error["code"] == 401 and isinstance(error["message"], str)
    # nothing was deleted or sent by the rejected calls
    kept = await client.get(f"/chat/{conversation_id}", headers=auth(token))
    assert kept.status_code == 200 and kept.json()["messages"] == []


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/chat/{id}/messages"), ("PATCH", "/chat/{id}")]
)
async def test_bad_token_is_401_even_with_a_bad_body(
    client: httpx.AsyncClient, method: str, path: str
):
    _, conversation_id = await new_session(client)
    response = await client.request(
        method, path.format(id=conversation_id), headers=JSON, content=b"{}"
    )
    assert response.status_code == 401, response.text


async def test_token_in_query_string_is_not_accepted(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    response = await client.get(f"/chat/{conversation_id}", params={"user_token": token})
    assert response.status_code == 401


async def test_bearer_token_is_accepted(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    response = await client.get(
        f"/chat/{conversation_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


# --- 403 and 404 -------------------------------------------------------------------------


async def test_other_users_conversation_is_403_and_untouched(client: httpx.AsyncClient):
    owner_token, conversation_id = await new_session(client)
    intruder_token, _ = await new_session(client)
    for method, path, body in OPERATIONS[1:]:
        response = await client.request(
            method, path.format(id=conversation_id), headers=auth(intruder_token), json=body
        )
        assert response.status_code == 403, (method, path)
        assert response.json() == {"code": 403, "message": response.json()["message"]}
    intruder_list = await client.get("/chat", headers=auth(intruder_token))
    assert conversation_id not in {c["id"] for c in intruder_list.json()["conversations"]}
    kept = await client.get(f"/chat/{conversation_id}", headers=auth(owner_token))
    assert kept.status_code == 200 and kept.json()["messages"] == []


async def test_unknown_conversation_is_404(client: httpx.AsyncClient):
    token, _ = await new_session(client)
    for method, path, body in OPERATIONS[1:]:
        response = await client.request(
            method, path.format(id="no-such-conversation"), headers=auth(token), json=body
        )
        assert response.status_code == 404, (method, path)
        body_json = response.json()
        assert body_json["status"] == 404 and isinstance(body_json["error"], str)


# --- conversations and messages ----------------------------------------------------------


async def test_send_stores_turn_in_order_and_moves_updated(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    before = (await client.get(f"/chat/{conversation_id}", headers=auth(token))).json()
    questions = ["What is FEL?", "And MEME?", "list methods"]
    for question in questions:
        response = await client.post(
            f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": question}
        )
        assert response.status_code == 200, response.text
        reply = response.json()["message"]
        assert reply["role"] == "assistant" and reply["content"].strip()
        assert isinstance(reply["timestamp"], int)
    after = (await client.get(f"/chat/{conversation_id}", headers=auth(token))).json()
    assert after["updated"] >= before["updated"]
    roles = [m["role"] for m in after["messages"]]
    assert roles == ["user", "assistant"] * 3
    assert [m["content"] for m in after["messages"][::2]] == questions
    only_messages = await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))
    assert only_messages.json()["messages"] == after["messages"]


async def test_reply_comes_from_the_catalog(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "What is MEME?"}
    )
    content = response.json()["message"]["content"]
    assert "MEME" in content and "Murrell" in content  # citation from the catalog


async def test_list_is_newest_updated_first(client: httpx.AsyncClient):
    token, first = await new_session(client)
    second = (await client.post("/chat", headers=auth(token))).json()["id"]
    listed = (await client.get("/chat", headers=auth(token))).json()["conversations"]
    assert [c["id"] for c in listed][:2] == [second, first]
    await client.post(f"/chat/{first}/messages", headers=auth(token), json={"message": "hi"})
    listed = (await client.get("/chat", headers=auth(token))).json()["conversations"]
    assert [c["id"] for c in listed] == [first, second]


async def test_delete_removes_conversation_and_messages(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "hello"}
    )
    response = await client.delete(f"/chat/{conversation_id}", headers=auth(token))
    assert response.status_code == 204 and response.content == b""
    assert (await client.get(f"/chat/{conversation_id}", headers=auth(token))).status_code == 404
    gone = await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))
    assert gone.status_code == 404
    again = await client.delete(f"/chat/{conversation_id}", headers=auth(token))
    assert again.status_code == 404


async def test_title_is_given_after_first_reply_and_rename_works(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    await client.post(
        f"/chat/{conversation_id}/messages",
        headers=auth(token),
        json={"message": "Which method finds episodic selection?"},
    )
    title = None
    for _ in range(50):
        title = (await client.get(f"/chat/{conversation_id}", headers=auth(token))).json()["title"]
        if title:
            break
        await asyncio.sleep(0.05)
    assert title and "episodic" in title.lower()
    renamed = await client.patch(
        f"/chat/{conversation_id}", headers=auth(token), json={"title": "HIV env"}
    )
    assert renamed.status_code == 200 and renamed.json()["title"] == "HIV env"
    bad = await client.patch(f"/chat/{conversation_id}", headers=auth(token), json={"title": ""})
    assert bad.status_code == 400


# --- bad bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"message": ""}',
        b'{"message": "   "}',
        b'{"message": 5}',
        b'{"message": null}',
        b'{"message": ["a"]}',
        b"not json",
        b"[]",
    ],
)
async def test_bad_message_bodies_are_400_and_store_nothing(client: httpx.AsyncClient, body):
    token, conversation_id = await new_session(client)
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), content=body
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "invalid_request" and error["details"]
    messages = await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))
    assert messages.json()["messages"] == []


async def test_message_over_limit_is_413(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    response = await client.post(
        f"/chat/{conversation_id}/messages",
        headers=auth(token),
        json={"message": "A" * (32 * 1024 + 1)},
    )
    assert response.status_code == 413
    assert "32768" in response.json()["details"]
    at_limit = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "A" * 32768}
    )
    assert at_limit.status_code == 200


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_sends_are_serialized_without_loss(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    texts = [f"what is {m}?" for m in ["FEL", "MEME", "FUBAR", "SLAC", "BUSTED", "RELAX"]]
    responses = await asyncio.gather(
        *[
            client.post(
                f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": t}
            )
            for t in texts
        ]
    )
    assert [r.status_code for r in responses] == [200] * len(texts)
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))).json()[
        "messages"
    ]
    assert len(messages) == 2 * len(texts)
    # strictly alternating: no turn interleaved with another
    assert [m["role"] for m in messages] == ["user", "assistant"] * len(texts)
    assert sorted(m["content"] for m in messages[::2]) == sorted(texts)


# --- health ----------------------------------------------------------------------------------


async def test_health_reports_components(client: httpx.AsyncClient):
    response = await client.get("/health")
    body = response.json()
    assert body["details"]["database"] == "healthy"
    assert body["details"]["llm"] == "healthy"
    details = {"database", "llm", "job_scheduler", "datamonkey", "rate_limits"}
    assert set(body["details"]) == details  # upstream's four, and ours
    assert body["details"]["datamonkey"] == body["details"]["job_scheduler"]  # HyPhy or not
    assert body["details"]["rate_limits"] == "in-process"  # no Redis configured here
    assert body["status"] in {"healthy", "unhealthy", "unknown"}
    assert response.status_code == (503 if body["status"] == "unhealthy" else 200)
