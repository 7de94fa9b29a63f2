"""A database that goes away mid-run gives a clear 5xx, not a hang or a crash."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

JSON = {"Content-Type": "application/json"}


async def test_requests_fail_with_database_error_when_the_database_is_gone(app, client):
    created = await client.post("/chat", headers=JSON)
    headers = {**JSON, "user_token": created.headers["X-Session-Token"]}
    conversation_id = created.json()["id"]

    # Point the running service at a PostgreSQL port where nothing listens.
    gone = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app.state.database.sessions = async_sessionmaker(gone, expire_on_commit=False)
    app.state.database.engine = gone
    try:
        for method, path, body in [
            ("POST", "/chat", None),
            ("POST", f"/chat/{conversation_id}/messages", {"message": "what is FEL?"}),
            ("DELETE", f"/chat/{conversation_id}", None),
        ]:
            response = await asyncio.wait_for(
                client.request(method, path, headers=headers, json=body), timeout=20
            )
            assert response.status_code == 500, (method, path, response.text)
            assert response.json()["code"] == "database_error"
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["details"]["database"] == "unhealthy"
    finally:
        await gone.dispose()
