"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datamonkey_chat.storage.db import Database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database of its own for each test."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await db.migrate()
    yield db
    await db.dispose()
