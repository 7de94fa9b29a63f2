"""The whole service over real HTTP with the assistant switched, by settings alone, to a
remote OpenAI-compatible model (a scripted server in another process)."""

from __future__ import annotations

import json

import httpx
import jwt
import pytest

from datamonkey_chat.api.app import create_app
from tests.conftest import serve_in_process
from tests.integration.conftest import FakeOpenAIServer

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture
def database_url(tmp_path) -> str:  # one database is enough here: the model is the subject
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"


@pytest.fixture
async def api(make_settings, fake_openai_server: FakeOpenAIServer):
    settings = make_settings(
        model="openai:scripted-model",
        openai_base_url=fake_openai_server.base_url,
        reply_timeout_seconds=3,
        temperature=0.2,
        max_output_tokens=321,
    )
    async with serve_in_process(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            created = await client.post("/chat", headers=JSON)
            headers = {**JSON, "user_token": created.headers["X-Session-Token"]}
            yield client, headers, created.json()["id"]


async def test_reply_comes_from_the_remote_model_with_tools(api, fake_openai_server):
    client, headers, conversation_id = api
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=headers, json={"message": "what is FUBAR?"}
    )
    assert response.status_code == 200, response.text
    reply = response.json()["message"]
    assert reply["role"] == "assistant" and "FUBAR" in reply["content"]
    assert [e["tool_name"] for e in reply["tool_events"]] == ["describe_method"] * 2
    request = fake_openai_server.last_request()
    assert request["model"] == "scripted-model"
    assert request["temperature"] == 0.2
    assert request.get("max_tokens", request.get("max_completion_tokens")) == 321
    # the model never sees the session token or the user's id
    sent = json.dumps(request)
    token = headers["user_token"]
    assert token not in sent
    assert jwt.decode(token, options={"verify_signature": False})["sub"] not in sent


async def test_streamed_reply_is_stored_like_a_plain_one(api):
    client, headers, conversation_id = api
    response = await client.post(
        f"/chat/{conversation_id}/messages",
        headers={**headers, "Accept": "text/event-stream"},
        json={"message": "tell me about MEME"},
    )
    events = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert events[0] == "tool_call" and "tool_result" in events and events[-1] == "done"
    assert "delta" in events
    done = json.loads(response.text.strip().splitlines()[-1][len("data: ") :])
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=headers)).json()
    assert messages["messages"][-1]["content"] == done["message"]["content"]
    assert [m["role"] for m in messages["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize(("trigger", "status"), [("FAIL500", 502), ("HANG", 504)])
async def test_model_failures_map_to_5xx_and_store_nothing(api, trigger, status):
    client, headers, conversation_id = api
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=headers, json={"message": f"{trigger} now"}
    )
    assert response.status_code == status
    body = response.json()
    assert body["code"] in {"model_error", "model_timeout"} and body["details"]
    assert "sk-" not in body["details"] and headers["user_token"] not in body["details"]
    messages = (await client.get(f"/chat/{conversation_id}/messages", headers=headers)).json()
    assert messages["messages"] == []
    health = (await client.get("/health")).json()
    assert health["details"]["llm"] == "healthy"
