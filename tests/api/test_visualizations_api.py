"""Visualizations (upstream's Visualizations API) on SQLite and PostgreSQL, without HyPhy.

Jobs are inserted through the repository (`insert_job`): only real HyPhy completes a job
through REST, and tests/integration runs that; here a completed job is a row with a stored
summary, as the runner writes it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest

from datamonkey_chat.storage import repository
from datamonkey_chat.storage.models import JobRow
from tests.api.test_datasets_api import FASTA, new_session, upload

SPEC: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": [{"site": 1, "dnds": 0.4}, {"site": 2, "dnds": 1.7}]},
    "mark": "bar",
    "encoding": {"x": {"field": "site"}, "y": {"field": "dnds", "type": "quantitative"}},
}
PLOT = {
    "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
    "title": "FEL: dN - dS per codon (LRT)",
    "data": {"values": [{"site": 1, "beta_minus_alpha": 0.5}]},
    "mark": "point",
}


def user_of(token: str) -> str:
    user_id: str = jwt.decode(token, options={"verify_signature": False})["sub"]
    return user_id


async def insert_job(
    app: Any,
    token: str,
    job_id: str,
    alignment_id: str = "a1",
    status: str = "completed",
    plots: list[dict[str, Any]] | None = None,
) -> None:
    """A job row as the runner leaves it (HyPhy not run): completed, with a stored summary."""
    summary = {"summary_text": "done", "plots": plots or []} if status == "completed" else None
    row = JobRow(
        id=job_id,
        user_id=user_of(token),
        method="fel",
        alignment_id=alignment_id,
        tree_id=None,
        options="{}",
        status=status,
        progress=1.0,
        attempts=1,
        summary=json.dumps(summary) if summary else None,
        created_ms=1_700_000_000_000,
        finished_ms=1_700_000_060_000 if status == "completed" else None,
    )
    async with app.state.database.transaction() as db:
        await repository.add_job(db, row)


def viz_body(job_id: str, **overrides: Any) -> dict[str, Any]:
    return {"job_id": job_id, "title": "Selection per site", "spec": SPEC, **overrides}


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    return await new_session(client)


@pytest.fixture
def headers(token: str) -> dict[str, str]:
    return {"user_token": token}


async def test_crud_round_trip(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    await insert_job(app, token, "job1")
    created = await client.post(
        "/visualizations",
        headers=headers,
        json=viz_body(
            "job1", description="dN/dS", config={"height": 200}, metadata={"prompt": "bars"}
        ),
    )
    assert created.status_code == 201, created.text
    viz = created.json()
    viz_id = viz["viz_id"]
    assert viz_id.isalnum() and viz_id[0].isalpha()  # upstream's Hash pattern
    assert viz["job_id"] == "job1" and viz["title"] == "Selection per site"
    assert viz["spec"] == SPEC and viz["config"] == {"height": 200}
    assert viz["metadata"] == {"library": "vega-lite", "prompt": "bars"}
    assert viz["description"] == "dN/dS" and "dataset_id" not in viz
    assert viz["created_at"].endswith("Z") and viz["created_at"] == viz["updated_at"]

    fetched = await client.get(f"/visualizations/{viz_id}", headers=headers)
    assert fetched.status_code == 200 and fetched.json() == viz
    listed = await client.get("/visualizations", headers=headers)
    assert listed.status_code == 200 and listed.json() == {"visualizations": [viz]}


async def test_filters_by_job_and_dataset(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    dataset = (await upload(client, FASTA, token)).json()["datasets"][0]["id"]
    await insert_job(app, token, "job1", alignment_id=dataset)
    await insert_job(app, token, "job2", alignment_id=dataset)
    a = (await client.post("/visualizations", headers=headers, json=viz_body("job1"))).json()
    b = (
        await client.post(
            "/visualizations", headers=headers, json=viz_body("job2", dataset_id=dataset)
        )
    ).json()
    c = (
        await client.post(
            "/visualizations", headers=headers, json=viz_body("job1", dataset_id=dataset)
        )
    ).json()

    async def ids(**params: str) -> list[str]:
        response = await client.get("/visualizations", headers=headers, params=params)
        assert response.status_code == 200
        return [v["viz_id"] for v in response.json()["visualizations"]]

    assert set(await ids()) == {a["viz_id"], b["viz_id"], c["viz_id"]}
    assert set(await ids(job_id="job1")) == {a["viz_id"], c["viz_id"]}
    assert set(await ids(dataset_id=dataset)) == {b["viz_id"], c["viz_id"]}
    assert await ids(job_id="job1", dataset_id=dataset) == [c["viz_id"]]
    assert await ids(job_id="nosuchjob") == []


async def test_a_token_is_required(client: httpx.AsyncClient, app: Any, token: str) -> None:
    await insert_job(app, token, "job1")
    created = await client.post(
        "/visualizations", headers={"user_token": token}, json=viz_body("job1")
    )
    viz_id = created.json()["viz_id"]
    for method, path, body in (
        ("GET", "/visualizations", None),
        ("POST", "/visualizations", viz_body("job1")),
        ("GET", f"/visualizations/{viz_id}", None),
        ("PUT", f"/visualizations/{viz_id}", {"title": "x"}),
        ("DELETE", f"/visualizations/{viz_id}", None),
    ):
        response = await client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == 401
        bad = await client.request(method, path, json=body, headers={"user_token": "forged"})
        assert bad.status_code == 401, (method, path)


async def test_another_users_visualization_is_refused(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    await insert_job(app, token, "job1")
    viz = (await client.post("/visualizations", headers=headers, json=viz_body("job1"))).json()
    other = {"user_token": await new_session(client)}
    path = f"/visualizations/{viz['viz_id']}"
    for method, body in (("GET", None), ("PUT", {"title": "mine now"}), ("DELETE", None)):
        response = await client.request(method, path, json=body, headers=other)
        assert response.status_code == 403, method
        assert response.json() == {"code": 403, "message": "User does not own this visualization"}
    assert (await client.get("/visualizations", headers=other)).json() == {"visualizations": []}
    listed = await client.get("/visualizations", headers=other, params={"job_id": "job1"})
    assert listed.json() == {"visualizations": []}
    # nor may the other user attach a visualization to this user's job or dataset
    refused = await client.post("/visualizations", headers=other, json=viz_body("job1"))
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["job_id"]
    kept = await client.get(path, headers=headers)
    assert kept.status_code == 200 and kept.json()["title"] == "Selection per site"


async def test_unknown_visualization_is_404(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, body in (("GET", None), ("PUT", {"title": "x"}), ("DELETE", None)):
        for viz_id in ("viz0123456789abcdef", "no_such\u00e9id"):
            response = await client.request(
                method, f"/visualizations/{viz_id}", json=body, headers=headers
            )
            assert response.status_code == 404, (method, viz_id)
            assert response.json()["status"] == 404 and "not found" in response.json()["error"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"spec": [1, 2, 3]}, "spec"),
        ({"spec": "bar chart"}, "spec"),
        ({"spec": {"mark": "bar", "data": {"values": ["x" * 1000] * 300}}}, "spec"),
        ({"spec": {"$schema": "https://example.com/evil.json", "mark": "bar"}}, "spec"),
        ({"spec": None}, "spec"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "t" * 201}, "title"),
        ({"title": 42}, "title"),
        ({"config": [1]}, "config"),
        ({"metadata": "vega"}, "metadata"),
        ({"job_id": "nosuchjob"}, "job_id"),
        ({"job_id": None}, "job_id"),
        ({"dataset_id": "nosuchdataset"}, "dataset_id"),
        ({"description": "a\u0000b"}, "description"),
    ],
)
async def test_bad_fields_are_400_with_errors(
    client: httpx.AsyncClient,
    app: Any,
    token: str,
    headers: dict[str, str],
    overrides: dict[str, Any],
    field: str,
) -> None:
    await insert_job(app, token, "job1")
    response = await client.post(
        "/visualizations", headers=headers, json=viz_body(**{"job_id": "job1", **overrides})
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field]
    assert all(e["message"] for e in body["errors"]) and body["code"] == "invalid_data"
    assert (await client.get("/visualizations", headers=headers)).json() == {"visualizations": []}


async def test_every_problem_is_listed_and_bodies_must_be_objects(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.post("/visualizations", headers=headers, json={"spec": [], "title": ""})
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {"job_id", "title", "spec"}
    for content in (b"[1]", b"not json", b'{"spec": NaN}'):
        bad = await client.post(
            "/visualizations",
            headers={**headers, "content-type": "application/json"},
            content=content,
        )
        assert bad.status_code == 400, content
        assert bad.json()["errors"][0]["field"] == "body"


async def test_partial_update_keeps_the_other_fields(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    await insert_job(app, token, "job1")
    viz = (
        await client.post(
            "/visualizations",
            headers=headers,
            json=viz_body("job1", description="first", config={"a": 1}),
        )
    ).json()
    path = f"/visualizations/{viz['viz_id']}"
    renamed = await client.put(path, headers=headers, json={"title": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    after = renamed.json()
    assert after["title"] == "Renamed"
    for kept in ("spec", "config", "metadata", "description", "job_id", "created_at"):
        assert after[kept] == viz[kept], kept
    assert after["updated_at"] >= viz["updated_at"]

    new_spec = {**SPEC, "mark": "point"}
    respecced = (
        await client.put(
            path, headers=headers, json={"spec": new_spec, "metadata": {"prompt": "p"}}
        )
    ).json()
    assert respecced["spec"] == new_spec and respecced["title"] == "Renamed"
    assert respecced["metadata"] == {"library": "vega-lite", "prompt": "p"}
    assert (await client.get(path, headers=headers)).json() == respecced

    refused = await client.put(path, headers=headers, json={"spec": [1], "title": ""})
    assert refused.status_code == 400
    assert {e["field"] for e in refused.json()["errors"]} == {"spec", "title"}
    assert (await client.get(path, headers=headers)).json() == respecced  # nothing changed

    cleared = (await client.put(path, headers=headers, json={"description": None})).json()
    assert "description" not in cleared and cleared["title"] == "Renamed"


async def test_delete_then_404(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    await insert_job(app, token, "job1")
    viz = (await client.post("/visualizations", headers=headers, json=viz_body("job1"))).json()
    path = f"/visualizations/{viz['viz_id']}"
    deleted = await client.delete(path, headers=headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.delete(path, headers=headers)).status_code == 404


async def test_deleting_a_job_or_dataset_deletes_its_visualizations(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    dataset = (await upload(client, FASTA, token)).json()["datasets"][0]["id"]
    await insert_job(app, token, "job1")
    await insert_job(app, token, "job2")
    gone = (await client.post("/visualizations", headers=headers, json=viz_body("job1"))).json()
    kept = (await client.post("/visualizations", headers=headers, json=viz_body("job2"))).json()
    by_dataset = (
        await client.post(
            "/visualizations", headers=headers, json=viz_body("job2", dataset_id=dataset)
        )
    ).json()

    assert (await client.delete("/jobs/job1", headers=headers)).status_code == 204
    assert (
        await client.get(f"/visualizations/{gone['viz_id']}", headers=headers)
    ).status_code == 404
    assert (await client.delete(f"/datasets/{dataset}", headers=headers)).status_code == 204
    remaining = (await client.get("/visualizations", headers=headers)).json()["visualizations"]
    assert [v["viz_id"] for v in remaining] == [kept["viz_id"]]
    assert by_dataset["viz_id"] != kept["viz_id"]


async def test_completion_saves_the_summarys_plots_exactly_once(
    client: httpx.AsyncClient, app: Any, token: str, headers: dict[str, str]
) -> None:
    """The runner's completion hook with a stored summary; recorded twice (or after a
    restart's adoption) it saves nothing more, and a client's own chart is left alone."""
    untitled = {"mark": "bar", "data": {"values": []}}
    await insert_job(app, token, "jobdone", alignment_id="aln1", plots=[PLOT, untitled])
    await insert_job(app, token, "jobrunning", status="running")
    mine = (await client.post("/visualizations", headers=headers, json=viz_body("jobdone"))).json()
    analyses = app.state.analyses

    await analyses._after_completion("jobdone")  # the runner's on_completed hook
    await analyses._after_completion("jobdone")
    assert await analyses.visualizations.save_job_plots("jobdone") == 0
    assert await analyses.visualizations.save_job_plots("jobrunning") == 0
    assert await analyses.visualizations.save_job_plots("nosuchjob") == 0

    listed = await client.get("/visualizations", headers=headers, params={"job_id": "jobdone"})
    found = listed.json()["visualizations"]
    assert len(found) == 3
    generated = [v for v in found if v["viz_id"] != mine["viz_id"]]
    assert [v["spec"] for v in generated] == [PLOT, untitled]
    assert [v["title"] for v in generated] == ["FEL: dN - dS per codon (LRT)", "FEL plot 2"]
    for viz in generated:
        assert viz["metadata"] == {"library": "vega-lite", "generated_by": "datamonkey-chat:fel"}
        assert viz["dataset_id"] == "aln1" and viz["job_id"] == "jobdone"
        assert viz["viz_id"].isalnum()
    assert (
        await client.get("/visualizations", headers=headers, params={"job_id": "jobrunning"})
    ).json() == {"visualizations": []}

    # A generated plot the user deleted stays deleted: completion is not replayed on reads
    await client.delete(f"/visualizations/{generated[0]['viz_id']}", headers=headers)
    again = await client.get("/visualizations", headers=headers, params={"job_id": "jobdone"})
    assert len(again.json()["visualizations"]) == 2


async def test_the_document_has_upstreams_operations(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    operations = {
        op["operationId"]: (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if path.startswith("/visualizations")
    }
    assert {k: v[:2] for k, v in operations.items()} == {
        "getVisualizationsList": ("get", "/visualizations"),
        "createVisualization": ("post", "/visualizations"),
        "getVisualization": ("get", "/visualizations/{vizId}"),
        "updateVisualization": ("put", "/visualizations/{vizId}"),
        "deleteVisualization": ("delete", "/visualizations/{vizId}"),
    }
    for operation_id, (_, _, op) in operations.items():
        assert op["tags"] == ["Visualizations"]
        token = [p for p in op["parameters"] if p["name"] == "user_token"]
        # upstream: optional for getVisualization ("public ones"); ours are all private (401)
        required = operation_id != "getVisualization"
        assert token and token[0]["in"] == "header" and token[0]["required"] is required
    create = operations["createVisualization"][2]
    assert set(create["responses"]) >= {"201", "400", "401"}
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateVisualizationRequest"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Visualization"
    }
    listed = operations["getVisualizationsList"][2]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Visualizations"
    }
    schemas = document["components"]["schemas"]
    assert set(schemas["Visualization"]["required"]) == {"viz_id", "job_id", "title", "spec"}
    assert set(schemas["CreateVisualizationRequest"]["required"]) == {"job_id", "title", "spec"}
    assert "UpdateVisualizationRequest" in schemas and "InvalidDataError" in schemas
    assert operations["deleteVisualization"][2]["responses"].keys() >= {"204", "403", "404"}


async def test_jobs_completed_before_the_migration_get_their_plots(database_url: str) -> None:
    """Revision 0008 saves the plots of jobs that completed before it, as completion does."""
    from alembic import command
    from sqlalchemy import Connection

    from datamonkey_chat.analyses.visualizations import VisualizationService, generated_id
    from datamonkey_chat.storage.db import Database, alembic_config

    def upgrade_to(revision: str) -> Any:
        def run(connection: Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        return run

    database = Database(database_url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(upgrade_to("0007_dataset_meta_type"))
        summary = json.dumps({"summary_text": "done", "plots": [PLOT, "not a plot", PLOT]})
        async with database.transaction() as db:
            for job_id, status in (("old1", "completed"), ("old2", "error")):
                await repository.add_job(
                    db,
                    JobRow(
                        id=job_id, user_id="u1", method="fel", alignment_id="aln", tree_id=None,
                        options="{}", status=status, progress=1.0, attempts=1,
                        summary=summary, created_ms=5, finished_ms=10,
                    ),
                )  # fmt: skip
        await database.migrate()
        async with database.session() as db:
            rows = await repository.list_visualizations(db, "u1", None, None)
        assert [(r.id, r.job_id, r.title) for r in rows] == [
            (generated_id("old1", 0), "old1", PLOT["title"]),
            (generated_id("old1", 2), "old1", PLOT["title"]),
        ]
        assert json.loads(rows[0].spec) == PLOT and rows[0].dataset_id == "aln"
        # the hook finds them saved already
        assert await VisualizationService(database).save_job_plots("old1") == 0
    finally:
        await database.dispose()
