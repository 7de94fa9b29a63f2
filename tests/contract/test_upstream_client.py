"""Issue 13: the client generated from upstream's whole document (Datamonkey API 1.2.0) works
unchanged against our server, for every operation, with a real FUBAR job for the job flow.

The client is generated from `../shared/contract/datamonkey-api-1.2.0.yaml` (not from our
document) as package `datamonkey_upstream`. Results are read raw
(`*_without_preload_content`): the generated result models cannot parse real HyPhy JSON (their
validators run `in set(...)` on the `tested` dicts), a client bug that hits upstream too.
Every number checked here is read from that raw JSON in the test itself.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

pytestmark = [pytest.mark.contract, pytest.mark.hyphy]

INTEGRASE = Path("/usr/share/hyphy/data/integrase_BDA.nex")  # 11 x 288 codons, with a tree
LETTER_FIRST_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
JOB_TIMEOUT_SECONDS = 600.0
# Methods the server refuses for this data, and why (each must answer 422 InvalidDataError).
REFUSED = {
    "NRMApi": "NRM is not runnable on HyPhy 2.5.47",
    "FADEApi": "FADE needs a protein alignment and a rooted tree",
}


@pytest_asyncio.fixture
async def client(upstream: ModuleType, api_url: str) -> AsyncIterator[Any]:
    async with upstream.ApiClient(upstream.Configuration(host=api_url)) as api_client:
        yield api_client


async def new_user_with_alignment(upstream: ModuleType, client: Any) -> tuple[str, Any]:
    """PostDataset without a token: a new session (X-Session-Token) and its dataset."""
    uploads = upstream.FileUploadAndQCApi(client)
    meta = upstream.DatasetMeta(name="integrase", description="HIV-1 integrase", type="nexus")
    response = await uploads.post_dataset_with_http_info(
        file=(INTEGRASE.name, INTEGRASE.read_bytes()), meta=meta
    )
    assert response.status_code == 201
    token = response.headers["X-Session-Token"]
    assert isinstance(response.data, upstream.Datasets)
    (dataset,) = response.data.datasets
    return token, dataset


def labelled_tree() -> bytes:
    """Integrase's own tree with two tips tagged {TEST}, as a Newick file."""
    text = INTEGRASE.read_text()
    newick = re.search(r"Tree\s+\w+\s*=\s*(\(.*?;)", text, re.S)
    assert newick is not None
    tree = newick.group(1)
    for tip in ("A1_KE_99_KNH1088", "B_BO_99_BOL0122"):
        tree = tree.replace(f"{tip}:", f"{tip}{{TEST}}:", 1)
    return tree.encode()


async def test_health_methods_and_pretty_print(upstream: ModuleType, client: Any) -> None:
    health = await upstream.HealthApi(client).get_health(pretty_print=True)
    assert health.status in ("healthy", "unknown")
    assert health.details.datamonkey == "healthy"  # HyPhy is installed here
    assert health.details.database == "healthy"

    methods = (await upstream.MethodsApi(client).get_methods_list()).methods
    by_id = {method.id: method for method in methods}
    for method in methods:
        assert method.name and method.description, method.id
        assert method.start_endpoint and method.result_endpoint, method.id
        if method.status == "available":  # one that cannot run here takes no options
            assert method.parameters, method.id
        assert all(p.name and p.type for p in method.parameters or []), method.id
    # status is honest: NRM cannot run here; the client's default "available" is not assumed
    assert by_id["nrm"].status != "available"
    assert by_id["fubar"].status == "available"
    raw = await upstream.MethodsApi(client).get_methods_list_without_preload_content(
        pretty_print=True
    )
    text = (await raw.read()).decode()
    assert text.startswith("{\n  "), text[:40]  # indented
    assert json.loads(text)["methods"][0]["id"] == methods[0].id


async def test_datasets(upstream: ModuleType, client: Any) -> None:
    token, dataset = await new_user_with_alignment(upstream, client)
    datasets = upstream.FileUploadAndQCApi(client)
    assert LETTER_FIRST_ID.match(dataset.id), dataset.id
    assert dataset.type == "nexus"  # the user's meta.type is kept
    assert dataset.name == "integrase" and dataset.description == "HIV-1 integrase"
    assert dataset.created is not None and dataset.created.tzinfo is not None
    assert dataset.content is None  # only with include_content

    listed = await datasets.get_datasets_list(user_token=token)
    assert [d.id for d in listed.datasets] == [dataset.id]

    full = await datasets.get_dataset_by_id(dataset.id, user_token=token, include_content=True)
    assert full.content == INTEGRASE.read_text()
    assert full.created == dataset.created

    with pytest.raises(upstream.exceptions.UnauthorizedException):
        await datasets.get_dataset_by_id(dataset.id)  # user_token is optional in the spec
    other_token, _ = await new_user_with_alignment(upstream, client)
    with pytest.raises(upstream.exceptions.ForbiddenException):
        await datasets.delete_dataset(dataset.id, user_token=other_token)

    assert await datasets.delete_dataset(dataset.id, user_token=token) is None  # 204
    with pytest.raises(upstream.exceptions.NotFoundException):
        await datasets.get_dataset_by_id(dataset.id, user_token=token)


async def wait_for_job(upstream: ModuleType, client: Any, token: str, job_id: str) -> Any:
    jobs = upstream.JobsApi(client)
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while True:
        job = await jobs.get_job_by_id(job_id, user_token=token)
        if job.status in ("completed", "error"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        await asyncio.sleep(0.5)


async def raw_json(response: Any) -> tuple[int, Any]:
    return response.status, json.loads(await response.read())


async def test_fubar_job_flow_and_visualizations(upstream: ModuleType, client: Any) -> None:
    token, dataset = await new_user_with_alignment(upstream, client)
    fubar, jobs = upstream.FUBARApi(client), upstream.JobsApi(client)
    request = upstream.FubarRequest(alignment=dataset.id, tree=dataset.id)  # defaults are sent

    started = await fubar.start_fubar_job(user_token=token, fubar_request=request)
    assert isinstance(started, upstream.JobStatus)
    assert started.status in ("queued", "running") and started.method == "fubar"
    assert LETTER_FIRST_ID.match(started.job_id), started.job_id
    assert started.alignment_id == dataset.id

    finished = await wait_for_job(upstream, client, token, started.job_id)
    assert finished.status == "completed", finished.error_message

    # GET -result: read raw; the posterior table is HyPhy's own
    status, body = await raw_json(
        await fubar.get_fubar_job_by_id_without_preload_content(started.job_id, user_token=token)
    )
    assert status == 200 and body["job_id"] == started.job_id
    content = body["result"]["MLE"]["content"]["0"]
    assert len(content) == 288  # one row per codon of the alignment
    headers = [h[0] for h in body["result"]["MLE"]["headers"]]
    beta_gt_alpha = headers.index("Prob[alpha<beta]")
    assert all(0 <= row[beta_gt_alpha] <= 1 for row in content)
    # POST -result: the job whose inputs and options match the body
    status, again = await raw_json(
        await fubar.get_fubar_job_without_preload_content(user_token=token, fubar_request=request)
    )
    assert status == 200 and again["job_id"] == started.job_id
    other = upstream.FubarRequest(alignment=dataset.id, tree=dataset.id, grid_points=30)
    with pytest.raises(upstream.exceptions.NotFoundException):
        await fubar.get_fubar_job(user_token=token, fubar_request=other)

    listed = await jobs.get_jobs_list(
        user_token=token, alignment_id=dataset.id, method="fubar", status="completed"
    )
    assert [j.job_id for j in listed.jobs] == [started.job_id]
    assert (await jobs.get_jobs_list(user_token=token, status="queued")).jobs == []

    await visualizations_flow(upstream, client, token, started.job_id, dataset.id)

    assert await jobs.delete_job(started.job_id, user_token=token) is None  # 204
    with pytest.raises(upstream.exceptions.NotFoundException):
        await jobs.get_job_by_id(started.job_id, user_token=token)
    assert (await jobs.get_jobs_list(user_token=token)).jobs == []


async def visualizations_flow(
    upstream: ModuleType, client: Any, token: str, job_id: str, dataset_id: str
) -> None:
    plots = upstream.VisualizationsApi(client)
    generated = (
        await plots.get_visualizations_list(user_token=token, job_id=job_id)
    ).visualizations
    assert generated, "the job's plots are saved as visualizations"
    assert all(v.job_id == job_id and v.spec.get("$schema") for v in generated)
    assert all(v.metadata.generated_by for v in generated)

    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "mark": "bar",
        "data": {"values": [{"site": 1, "p": 0.5}]},
        "encoding": {"x": {"field": "site"}, "y": {"field": "p"}},
    }
    created = await plots.create_visualization(
        user_token=token,
        create_visualization_request=upstream.CreateVisualizationRequest(
            job_id=job_id, dataset_id=dataset_id, title="Mine", spec=spec
        ),
    )
    assert created.title == "Mine" and created.spec == spec and created.job_id == job_id
    assert created.created_at is not None
    fetched = await plots.get_visualization(created.viz_id, user_token=token)
    assert fetched.spec == spec

    updated = await plots.update_visualization(
        created.viz_id,
        user_token=token,
        update_visualization_request=upstream.UpdateVisualizationRequest(title="Renamed"),
    )
    assert updated.title == "Renamed" and updated.spec == spec

    by_dataset = await plots.get_visualizations_list(user_token=token, dataset_id=dataset_id)
    assert created.viz_id in {v.viz_id for v in by_dataset.visualizations}

    with pytest.raises(upstream.exceptions.BadRequestException) as refused:
        await plots.create_visualization(
            user_token=token,
            create_visualization_request=upstream.CreateVisualizationRequest(
                job_id="nosuchjob", title="x", spec=spec
            ),
        )
    assert refused.value.data is None or refused.value.data.errors  # InvalidDataError

    assert await plots.delete_visualization(created.viz_id, user_token=token) is None
    with pytest.raises(upstream.exceptions.NotFoundException):
        await plots.get_visualization(created.viz_id, user_token=token)


def method_apis(upstream: ModuleType) -> list[tuple[str, Any, type, str]]:
    """(api class name, api class, request model, its parameter name) for every `start*Job`
    of the document."""
    found = []
    for name in dir(upstream):
        api = getattr(upstream, name)
        if not (name.endswith("Api") and inspect.isclass(api)):
            continue
        starts = [m for m in dir(api) if m.startswith("start_") and m.endswith("_job")]
        if not starts:
            continue
        parameters = inspect.signature(getattr(api, starts[0])).parameters
        (model,) = [p for p in parameters if p.endswith("_request")]
        found.append((name, api, getattr(upstream, _class_name(model)), model))
    return found


def _class_name(parameter: str) -> str:
    return "".join(part.capitalize() for part in parameter.split("_"))


def request_for(upstream: ModuleType, model: type, alignment: str, labelled: str) -> Any:
    fields = model.model_fields  # type: ignore[attr-defined]
    values: dict[str, Any] = {}
    if "alignment" in fields:
        values["alignment"] = alignment
    if "tree" in fields:
        values["tree"] = labelled
    if "branch_sets" in fields:
        values["branch_sets"] = ["TEST"]
    if "test_branches" in fields:
        values["test_branches"] = ["TEST"]
    if "genetic_code" in fields and fields["genetic_code"].is_required():
        values["genetic_code"] = "Universal"
    if "compartment_definitions" in fields:  # SlatkinRequest: the tree alone, no alignment
        values["groups"] = 2
        values["compartment_definitions"] = [
            upstream.SlatkinRequestCompartmentDefinitionsInner(regexp=regexp, description=name)
            for regexp, name in (("^D_", "Subtype D"), ("^(A1|B)_", "Subtypes A1 and B"))
        ]
        values["replicates"] = 20
    return model(**values)


def operations(api: Any) -> tuple[str, str, str]:
    """(start, result by id, result by request) method names of one method's API class."""
    names = [m for m in dir(api) if not m.startswith("_") and "_with_http_info" not in m]
    names = [m for m in names if "_without_preload_content" not in m]
    (start,) = [m for m in names if m.startswith("start_")]
    (by_id,) = [m for m in names if m.endswith("_by_id")]
    (by_request,) = [m for m in names if m not in (start, by_id) and m.startswith("get_")]
    return start, by_id, by_request


async def test_every_method_start_and_result(upstream: ModuleType, client: Any) -> None:
    token, dataset = await new_user_with_alignment(upstream, client)
    uploaded = await upstream.FileUploadAndQCApi(client).post_dataset(
        user_token=token,
        file=("labelled.nwk", labelled_tree()),
        meta=upstream.DatasetMeta(name="labelled", type="tree"),
    )
    labelled = uploaded.datasets[0].id
    jobs = upstream.JobsApi(client)
    apis = method_apis(upstream)
    assert len(apis) == 14, [name for name, *_ in apis]  # every method of the document
    for name, api_class, model, parameter in apis:
        api = api_class(client)
        start, by_id, by_request = operations(api_class)
        request = request_for(upstream, model, dataset.id, labelled)
        keyword = {parameter: request}
        if name in REFUSED:
            with pytest.raises(upstream.exceptions.UnprocessableEntityException) as refused:
                await getattr(api, start)(user_token=token, **keyword)
            assert refused.value.data.errors, (name, refused.value.body)
            continue
        job = await getattr(api, start)(user_token=token, **keyword)
        assert isinstance(job, upstream.JobStatus), name
        if "alignment" not in model.model_fields:  # type: ignore[attr-defined]
            assert job.alignment_id is None and job.tree_id == labelled, name  # Slatkin
        assert LETTER_FIRST_ID.match(job.job_id) and job.status in ("queued", "running"), name
        status, body = await raw_json(
            await getattr(api, by_id + "_without_preload_content")(job.job_id, user_token=token)
        )
        assert status == 200 and body["job_id"] == job.job_id, (name, body)
        find = getattr(api, by_request + "_without_preload_content")
        if "user_token" in inspect.signature(find).parameters:
            status, body = await raw_json(await find(user_token=token, **keyword))
        else:  # getBGMJob: upstream's client can send the token only in the body
            in_body = request.model_copy(update={"user_token": token})
            status, body = await raw_json(await find(**{parameter: in_body}))
        assert status == 200 and body["job_id"] == job.job_id, (name, body)
        assert await jobs.delete_job(job.job_id, user_token=token) is None, name  # cancels
        with pytest.raises(upstream.exceptions.NotFoundException):
            await jobs.get_job_by_id(job.job_id, user_token=token)
