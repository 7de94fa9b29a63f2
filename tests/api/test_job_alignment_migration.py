"""Revision 0009_job_alignment_optional: a job may have no alignment (a run on a tree alone),
on SQLite and PostgreSQL; going back names its tree as its alignment."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from datamonkey_chat.analyses.service import job_json
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database, alembic_config
from datamonkey_chat.storage.models import JobRow


def migrate_to(revision: str, down: bool = False) -> Any:
    from alembic import command
    from sqlalchemy import Connection

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    return run


def tree_only_job(job_id: str) -> JobRow:
    return JobRow(
        id=job_id, user_id="u1", method="slatkin-maddison", alignment_id=None, tree_id="tree1",
        options="{}", status="completed", progress=1.0, attempts=1, created_ms=5,
    )  # fmt: skip


async def test_a_job_without_alignment_is_stored_and_downgrade_keeps_it(
    database_url: str,
) -> None:
    database = Database(database_url)
    try:
        await database.migrate()
        async with database.transaction() as db:
            await repository.add_job(db, tree_only_job("sm1"))
        async with database.session() as db:
            row = await repository.get_job(db, "sm1")
            assert row is not None
            listed = await repository.list_jobs(db, "u1", {"tree_id": "tree1"})
        assert job_json(row)["alignment_id"] is None and job_json(row)["tree_id"] == "tree1"
        assert [r.id for r in listed] == ["sm1"]

        async with database.engine.begin() as connection:
            await connection.run_sync(migrate_to("0008_visualizations", down=True))
        async with database.engine.connect() as connection:
            kept = await connection.scalar(sa.text("SELECT alignment_id FROM jobs WHERE id='sm1'"))
        assert kept == "tree1"  # the old schema needs one: the tree it ran on
        insert = sa.text(
            "INSERT INTO jobs (id, user_id, method, alignment_id, options, status, progress, "
            "attempts, created_ms) VALUES ('x', 'u1', 'fel', :aln, '{}', 'queued', 0, 0, 1)"
        )
        with pytest.raises(IntegrityError):  # NOT NULL again
            async with database.engine.begin() as connection:
                await connection.execute(insert, {"aln": None})
        async with database.engine.begin() as connection:  # the same row with an alignment
            await connection.execute(insert, {"aln": "aln1"})
        async with database.engine.begin() as connection:
            await connection.run_sync(migrate_to("head"))
        async with database.transaction() as db:
            await repository.add_job(db, tree_only_job("sm2"))
    finally:
        await database.dispose()
