"""DELETE /session ends the caller's session at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.api.test_chat_api import JSON, auth, new_session


async def test_ending_a_session_refuses_its_token_at_once(client: httpx.AsyncClient):
    token, conversation_id = await new_session(client)
    other, _ = await new_session(client)
    # Fresh checks of the session are kept for a minute: these requests fill that cache.
    assert (await client.get(f"/chat/{conversation_id}", headers=auth(token))).status_code == 200
    assert (await client.get("/datasets", headers={"user_token": token})).status_code == 200

    ended = await client.delete("/session", headers=auth(token))
    assert ended.status_code == 204 and ended.content == b""

    for method, path in [
        ("GET", "/chat"),
        ("GET", f"/chat/{conversation_id}"),
        ("GET", f"/chat/{conversation_id}/messages"),
        ("DELETE", f"/chat/{conversation_id}"),
        ("GET", "/datasets"),
        ("GET", "/jobs"),
        ("DELETE", "/session"),
    ]:
        response = await client.request(method, path, headers=auth(token))
        assert response.status_code == 401, (method, path)
        assert response.json() == {"code": 401, "message": "Unknown session"}
    bearer = await client.get("/chat", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    sent = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "hi"}
    )
    assert sent.status_code == 401
    # Operations that start sessions treat it as any unknown token: a new session.
    created = await client.post("/chat", headers=auth(token))
    assert created.status_code == 201 and created.headers["X-Session-Token"] != token
    # Nobody else's session is touched.
    assert (await client.get("/chat", headers=auth(other))).status_code == 200


async def test_ending_a_session_needs_one(client: httpx.AsyncClient):
    assert (await client.delete("/session", headers=JSON)).status_code == 401
    forged = await client.delete("/session", headers=auth("not-a-token"))
    assert forged.status_code == 401
