"""History windows kept in memory (domain/windows.py), on SQLite and PostgreSQL, with the
offline assistant: a kept window gives the assistant what a read from the database would,
a second send reads no history, other servers' writes are heard, and turns stored before
sizes were are measured from their records."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import event

from datamonkey_chat.api.app import create_app
from datamonkey_chat.assistant.history import kept_turns, turn_chars, turn_messages
from datamonkey_chat.domain.windows import HistoryWindows
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.db import Database
from tests.api.test_change_feed import eventually, serving
from tests.api.test_chat_api import auth, new_session
from tests.conftest import open_client

SAYINGS = ("what is FEL?", "hello", "list methods", "what is dN/dS?", "how do I cite it?")
BUDGET = 9_000  # a few turns with tool results: windows are trimmed, not whole conversations


async def send(client: httpx.AsyncClient, token: str, conversation_id: str, text: str) -> str:
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": text}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["message"]["content"])


def fresh_windows(database: Database, settings: Settings) -> HistoryWindows:
    """Windows with nothing kept: every window is read from the database."""
    return HistoryWindows(
        database,
        budget_chars=settings.context_budget_chars,
        max_turns=settings.context_max_turns,
        records=False,
        capacity=0,
        max_bytes=0,
    )


async def test_a_kept_window_gives_what_the_database_gives(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(context_budget_chars=BUDGET, context_max_turns=12)
    app = create_app(settings)
    async for client in open_client(app):
        token, conversation_id = await new_session(client)
        kept = app.state.conversations._windows
        from_database = fresh_windows(app.state.database, settings)
        for number in range(30):
            await send(client, token, conversation_id, SAYINGS[number % len(SAYINGS)])
            in_memory = kept._kept.conversation(conversation_id)
            assert in_memory is not None, "the send kept its window"
            window, read = in_memory[1], await from_database.window(conversation_id)
            assert read is not None and not window.is_first and not read.is_first
            for reserve in (0, 12, 500):
                assert kept_turns(window.turns, BUDGET, reserve_chars=reserve) == kept_turns(
                    read.turns, BUDGET, reserve_chars=reserve
                ), (number, reserve)
            assert len(window.turns) <= 12
        assert 2 <= len(kept_turns(window.turns, BUDGET)) < 12  # the budget trimmed it


async def test_a_second_send_reads_no_history(app: FastAPI, client: httpx.AsyncClient) -> None:
    token, conversation_id = await new_session(client)
    await send(client, token, conversation_id, "what is MEME?")
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()))

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        reply = await send(client, token, conversation_id, "how do I cite it?")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert "MEME" in reply  # the method came from the kept window
    assert [s for s in statements if s.startswith("SELECT")] == []
    # (the first turn's title is written in the background meanwhile)
    turn = [s.split()[0] for s in statements if "SET title" not in s]
    assert turn == ["UPDATE", "INSERT"]


async def test_history_does_not_read_the_records_for_the_offline_assistant(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token, conversation_id = await new_session(client)
    await send(client, token, conversation_id, "what is MEME?")
    app.state.conversations._windows.forget("anyone", conversation_id)  # read again
    statements: list[str] = []
    engine = app.state.database.engine.sync_engine
    listener = lambda _c, _cur, statement, *_: statements.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert "MEME" in await send(client, token, conversation_id, "how do I cite it?")
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    reads = [s for s in statements if s.lstrip().startswith("SELECT")]
    assert len(reads) == 1 and "model_chars" in reads[0]
    assert "model_messages" not in reads[0]


async def test_turns_stored_before_sizes_are_measured_from_their_records(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    token, conversation_id = await new_session(client)
    for saying in SAYINGS:
        await send(client, token, conversation_id, saying)
    database: Database = app.state.database
    sized = await fresh_windows(database, settings).window(conversation_id)
    async with database.engine.begin() as connection:  # as rows written before 0010 are
        await connection.execute(sa.text("UPDATE messages SET model_chars = NULL"))
    unsized = await fresh_windows(database, settings).window(conversation_id)
    assert sized is not None and unsized is not None
    assert all(t.model_chars is None and t.model_messages for t in unsized.turns)
    assert all(t.model_messages is None for t in sized.turns)
    assert [turn_chars(t) for t in unsized.turns] == [t.model_chars for t in sized.turns]
    # and the stored size is the record's own measure
    assert [len(turn_messages(t)) for t in unsized.turns] == [4, 2, 4, 4, 4]
    assert "MEME" not in await send(client, token, conversation_id, "how do I cite it?")


async def test_a_deleted_conversation_is_not_sent_to(client: httpx.AsyncClient) -> None:
    token, conversation_id = await new_session(client)
    await send(client, token, conversation_id, "what is FEL?")
    assert (await client.delete(f"/chat/{conversation_id}", headers=auth(token))).status_code == 204
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "hello"}
    )
    assert response.status_code == 404


async def test_another_users_send_is_refused_with_a_kept_window(client: httpx.AsyncClient) -> None:
    token, conversation_id = await new_session(client)
    await send(client, token, conversation_id, "what is FEL?")
    other, _ = await new_session(client)
    response = await client.post(
        f"/chat/{conversation_id}/messages", headers=auth(other), json={"message": "hello"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_kept_window_hears_the_other_servers_turns(
    make_settings: Callable[..., Settings],
) -> None:
    """Two servers on one PostgreSQL: a turn stored through one reaches the other's window."""
    async with serving(make_settings()) as first, serving(make_settings()) as second:
        token, conversation_id = await new_session(first)
        await send(first, token, conversation_id, "what is MEME?")  # kept by the first
        await send(second, token, conversation_id, "what is FEL?")

        async def messages() -> int:
            response = await first.get(f"/chat/{conversation_id}/messages", headers=auth(token))
            return len(response.json()["messages"])

        await eventually(messages, 4)  # the first server heard of the second's turn
        reply = await send(first, token, conversation_id, "how do I cite it?")
        assert reply.startswith("To cite FEL"), reply

        assert (await second.delete(f"/chat/{conversation_id}", headers=auth(token))).status_code
        response = await first.post(
            f"/chat/{conversation_id}/messages", headers=auth(token), json={"message": "hello"}
        )
        assert response.status_code == 404
