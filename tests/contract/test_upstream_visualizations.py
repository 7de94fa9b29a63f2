"""Upstream's own generated client (Datamonkey API 1.2.0, python/asyncio), unchanged, against
our Visualizations operations: create, list by job, get, update, delete, and the error
bodies it parses (400 InvalidDataError, 404 NotFoundError).

The client is tests/contract/conftest.py's `upstream` (generated once per session).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jwt
import pytest

from datamonkey_chat.storage import repository
from datamonkey_chat.storage.models import JobRow
from tests.conftest import serve_in_process

pytestmark = pytest.mark.contract

PLOT = {"mark": "bar", "title": "The job's own plot"}


async def test_upstreams_client_manages_visualizations(upstream: Any, app: Any) -> None:
    client_module = upstream
    async with serve_in_process(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            token = (await http.post("/chat", json={})).headers["X-Session-Token"]
        user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
        job = JobRow(
            id="job1",
            user_id=user_id,
            method="fel",
            alignment_id="aln1",
            tree_id=None,
            options="{}",
            status="completed",
            progress=1.0,
            attempts=1,
            summary=json.dumps({"plots": [PLOT]}),
            created_ms=1,
            finished_ms=2,
        )  # fmt: skip  (a completed job's row, HyPhy not run)
        async with app.state.database.transaction() as db:
            await repository.add_job(db, job)
        await app.state.analyses.visualizations.save_job_plots("job1")

        configuration = client_module.Configuration(host=url)
        async with client_module.ApiClient(configuration) as api_client:
            api = client_module.VisualizationsApi(api_client)
            request = client_module.CreateVisualizationRequest(
                job_id="job1", title="Mine", spec={"mark": "point"}, metadata={"prompt": "p"}
            )
            created = await api.create_visualization(
                user_token=token, create_visualization_request=request
            )
            assert created.job_id == "job1" and created.title == "Mine"
            assert created.metadata.library == "vega-lite" and created.metadata.prompt == "p"
            assert created.created_at is not None

            listed = await api.get_visualizations_list(user_token=token, job_id="job1")
            by_title = {v.title: v for v in listed.visualizations}
            assert set(by_title) == {"Mine", "The job's own plot"}
            assert by_title["The job's own plot"].metadata.generated_by == "datamonkey-chat:fel"
            assert by_title["The job's own plot"].spec == PLOT

            got = await api.get_visualization(created.viz_id, user_token=token)
            assert got.spec == {"mark": "point"}
            update = client_module.UpdateVisualizationRequest(title="Renamed")
            updated = await api.update_visualization(
                created.viz_id, user_token=token, update_visualization_request=update
            )
            assert updated.title == "Renamed" and updated.spec == {"mark": "point"}

            bad = client_module.CreateVisualizationRequest(job_id="nojob", title="x", spec={})
            with pytest.raises(client_module.ApiException) as refused:
                await api.create_visualization(user_token=token, create_visualization_request=bad)
            assert refused.value.status == 400
            assert [e.var_field for e in refused.value.data.errors] == ["job_id"]

            assert await api.delete_visualization(created.viz_id, user_token=token) is None
            with pytest.raises(client_module.ApiException) as gone:
                await api.get_visualization(created.viz_id, user_token=token)
            assert gone.value.status == 404 and gone.value.data.status == 404
