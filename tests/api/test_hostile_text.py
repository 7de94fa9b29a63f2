"""Text no database can store (NUL, lone surrogates) is a 400 wherever it enters, on SQLite
and PostgreSQL, and a row the database refuses in a shared batch fails alone."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi import FastAPI

from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.group_commit import GroupInserter
from datamonkey_chat.storage.models import ConversationRow
from tests.api.test_chat_api import JSON, auth, new_session
from tests.api.test_datasets_api import FASTA, stored, upload
from tests.conftest import open_client

# Each as JSON carries it: `"\u0000"` and `"\ud800"` (a lone surrogate decodes from JSON).
BAD_TEXTS = {"nul": "a\x00b", "surrogate": "a\ud800b", "low-surrogate": "\udfff"}


def raw_json(value: object) -> bytes:
    return json.dumps(value).encode()  # ASCII with \u escapes, as a hostile client sends it


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "Invalid request" and body["code"] == "invalid_request"
    assert field in body["details"]
    assert "NUL" in body["details"] or "surrogate" in body["details"]


@pytest.fixture(params=list(BAD_TEXTS), ids=list(BAD_TEXTS))
def bad(request: pytest.FixtureRequest) -> str:
    return BAD_TEXTS[request.param]


async def test_titles_are_refused_on_create_and_rename(client: httpx.AsyncClient, bad: str):
    created = await client.post("/chat", headers=JSON, content=raw_json({"title": bad}))
    assert_refused(created, "title")
    token, conversation_id = await new_session(client)
    renamed = await client.patch(
        f"/chat/{conversation_id}", headers=auth(token), content=raw_json({"title": bad})
    )
    assert_refused(renamed, "title")
    listed = await client.get("/chat", headers=auth(token))
    assert [c["title"] for c in listed.json()["conversations"]] == [None]  # nothing stored


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_messages_are_refused_plain_and_streamed(
    client: httpx.AsyncClient, bad: str, stream: bool
):
    token, conversation_id = await new_session(client)
    headers = {**auth(token), "Accept": "text/event-stream" if stream else "application/json"}
    sent = await client.post(
        f"/chat/{conversation_id}/messages",
        headers=headers,
        content=raw_json({"message": f"what is FEL? {bad}"}),
    )
    assert_refused(sent, "message")
    messages = await client.get(f"/chat/{conversation_id}/messages", headers=auth(token))
    assert messages.json()["messages"] == []
    # The conversation still works for good text.
    good = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "what is FEL?"}
    )
    assert good.status_code == 200


@pytest.mark.parametrize("field", ["name", "description", "type"])
async def test_upload_meta_is_refused(client: httpx.AsyncClient, bad: str, field: str):
    token, _ = await new_session(client)
    meta = json.dumps({field: bad})  # the \u escapes survive as text in the form field
    response = await upload(client, FASTA, token, meta=meta)
    assert_refused(response, f"meta.{field}")
    listed = await client.get("/datasets", headers={"user_token": token})
    assert listed.json()["datasets"] == []


async def test_a_nul_in_a_sequence_name_is_refused_not_stored(client: httpx.AsyncClient):
    token, _ = await new_session(client)
    response = await upload(client, FASTA.replace(">chimp", ">chi\x00mp"), token)
    assert response.status_code == 422
    assert response.json()["problems"][0]["code"] == "not_text"


async def test_job_options_and_ids_are_refused(client: httpx.AsyncClient, bad: str):
    token, _ = await new_session(client)
    headers = {**JSON, "user_token": token}
    alignment = await stored(client, FASTA, token)
    started = await client.post(
        "/methods/fel-start",
        headers=headers,
        content=raw_json({"alignment": alignment["id"], "pvalue": bad}),
    )
    assert_refused(started, "options.pvalue")
    nested = await client.post(
        "/methods/fel-start",
        headers=headers,
        content=raw_json({"alignment": alignment["id"], "branches": [{bad: 1}]}),
    )
    assert_refused(nested, "options.branches[0] key")
    unknown = await client.post(
        "/methods/fel-start", headers=headers, content=raw_json({"alignment": bad})
    )
    assert_refused(unknown, "dataset id")
    assert (await client.get("/jobs", headers=headers)).json()["jobs"] == []


async def test_ids_no_database_can_hold_are_not_found(client: httpx.AsyncClient):
    token, _ = await new_session(client)
    headers = auth(token)
    for path in ("/chat/a%00b", "/chat/a%00b/messages", "/datasets/a%00b", "/jobs/a%00b"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 404, (path, response.text)
    assert (await client.delete("/chat/a%00b", headers=headers)).status_code == 404
    result = await client.get("/methods/fel-result", params={"job_id": "a\x00b"}, headers=headers)
    assert result.status_code == 404
    filtered = await client.get("/jobs", params={"alignment_id": "a\x00b"}, headers=headers)
    assert filtered.status_code == 200 and filtered.json()["jobs"] == []


async def test_a_create_the_database_refuses_fails_alone(
    app: FastAPI, settings: Settings, client: httpx.AsyncClient
):
    """Straight to the group commit, past the 400 at the edge (and the service's own
    clean-up of titles), as a bug or a new entry point would: the other creates in the
    same batches all succeed."""
    # What each database refuses: PostgreSQL a NUL, SQLite a lone surrogate.
    refused = "\x00" if settings.resolved_database_url.startswith("postgresql") else "\ud800"
    inserter = GroupInserter(app.state.database, ConversationRow)
    rows = [
        {
            "id": f"conversation-{i}",
            "user_id": f"user-{i}",
            "title": f"bad {refused} title" if i == 60 else f"title {i}",
            "created_ms": i,
            "updated_ms": i,
        }
        for i in range(120)
    ]
    results = await asyncio.gather(*(inserter.insert(row) for row in rows), return_exceptions=True)
    failed = [i for i, result in enumerate(results) if isinstance(result, BaseException)]
    assert failed == [60]
    conversations = app.state.conversations
    for i in (0, 59, 61, 119):
        listed = await conversations.list_for_user(f"user-{i}")
        assert [c.title for c in listed] == [f"title {i}"]
    assert await conversations.list_for_user("user-60") == []


async def test_concurrent_http_creates_beside_a_refused_title_all_succeed(
    client: httpx.AsyncClient,
):
    bodies = [raw_json({"title": "a\x00b" if i == 20 else f"t{i}"}) for i in range(40)]
    responses = await asyncio.gather(
        *(client.post("/chat", headers=JSON, content=body) for body in bodies)
    )
    assert [r.status_code for r in responses] == [400 if i == 20 else 201 for i in range(40)]


async def test_the_app_still_serves_after_hostile_text(settings: Settings):
    from datamonkey_chat.api.app import create_app

    async for client in open_client(create_app(settings)):
        refused = await client.post("/chat", headers=JSON, content=raw_json({"title": "\ud800"}))
        assert refused.status_code == 400
        assert (await client.post("/chat", headers=JSON, json={"title": "ok"})).status_code == 201
