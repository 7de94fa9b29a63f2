"""Revision 0010_message_model_chars on SQLite and PostgreSQL: messages keep their records'
sizes; going back drops the column and keeps every message."""

from __future__ import annotations

import sqlalchemy as sa

from datamonkey_chat.storage.db import Database
from tests.api.test_job_alignment_migration import migrate_to


async def test_sizes_go_and_come_back_without_losing_a_message(database_url: str) -> None:
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO conversations (id, user_id, title, created_ms, updated_ms, "
                    "last_seq) VALUES ('c1', 'u1', NULL, 1, 1, 2)"
                )
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO messages (conversation_id, seq, role, content, timestamp_ms, "
                    "model_messages, model_chars) VALUES ('c1', 1, 'user', 'hi', 1, NULL, NULL),"
                    " ('c1', 2, 'assistant', 'hello', 2, '[]', 1234)"
                )
            )
        async with database.engine.begin() as connection:
            await connection.run_sync(migrate_to("0009_job_alignment_optional", down=True))
        async with database.engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: [c["name"] for c in sa.inspect(sync).get_columns("messages")]
            )
            rows = (await connection.execute(sa.text("SELECT seq, content FROM messages"))).all()
        assert "model_chars" not in columns
        assert sorted(map(tuple, rows)) == [(1, "hi"), (2, "hello")]

        await database.migrate()
        async with database.engine.connect() as connection:
            sizes = (
                await connection.execute(sa.text("SELECT seq, model_chars FROM messages"))
            ).all()
        assert sorted(map(tuple, sizes)) == [(1, None), (2, None)]  # measured from records
    finally:
        await database.dispose()
