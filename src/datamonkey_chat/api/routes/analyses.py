"""Methods and jobs: start HyPhy analyses, follow them, read their results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from datamonkey_chat.api.deps import Analyses, CurrentUser
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes.chat import UNAUTHORIZED
from datamonkey_chat.api.schemas import (
    DATA_PROBLEMS_RESPONSE,
    ForbiddenError,
    NotFoundError,
    ServerError,
)

methods = APIRouter(prefix="/methods", tags=["Methods"])
jobs = APIRouter(prefix="/jobs", tags=["Jobs"])

OWNED = {
    **UNAUTHORIZED,
    403: {"model": ForbiddenError, "description": "Forbidden - User does not own this job"},
    404: {"model": NotFoundError, "description": "Job not found"},
}


class StartJobRequest(BaseModel):
    """The datasets to analyse; any other field is a method option (see GET /methods)."""

    model_config = ConfigDict(extra="allow")

    alignment: str = Field(description="Id of the alignment dataset")
    tree: str | None = Field(
        default=None,
        description="Id of a tree dataset, or of a NEXUS alignment whose own tree to use; "
        "without one, the alignment's own tree or a neighbour-joining tree is used",
    )
    user_token: str | None = Field(
        default=None, description="Sent by upstream's generated clients; not an option"
    )


@methods.get(
    "",
    operation_id="listMethods",
    summary="The HyPhy methods and their parameters",
    responses={200: {"description": '`{"methods": [...]}`, each with its options'}},
)
async def list_methods(analyses: Analyses) -> Response:
    return JSONResponse({"methods": analyses.methods()})


@methods.post(
    "/{method}-start",
    operation_id="startMethodJob",
    summary="Queue a HyPhy analysis",
    description="Answers 200 (as Datamonkey does) with the queued job: `job_id`, `status` "
    '"queued". The inputs are checked first: a method that cannot run on the data '
    "(e.g. protein data to FEL) gets 422 with `problems`, one per reason.",
    responses={200: {"description": "The queued job"}, **OWNED, **DATA_PROBLEMS_RESPONSE},
)
async def start_method_job(
    method: str,
    user_id: CurrentUser,
    analyses: Analyses,
    body: StartJobRequest = Body(),
) -> Response:
    options: dict[str, Any] = dict(body.model_extra or {})
    job = await analyses.start_job(user_id, method, body.alignment, body.tree, options)
    return JSONResponse(job)


@methods.get(
    "/{method}-result",
    operation_id="getMethodResult",
    summary="A job's status and, when completed, HyPhy's JSON and a summary",
    responses={200: {"description": "Status, and `result` + `summary` when completed"}, **OWNED},
)
async def get_method_result(
    method: str,
    user_id: CurrentUser,
    analyses: Analyses,
    job_id: str = Query(description="The job's id"),
) -> Response:
    return JSONResponse(await analyses.job_result(user_id, method, job_id))


@jobs.get(
    "",
    operation_id="listJobs",
    summary="List the user's jobs, newest first",
    responses={200: {"description": '`{"jobs": [...]}`'}, **UNAUTHORIZED},
)
async def list_jobs(
    user_id: CurrentUser,
    analyses: Analyses,
    alignment_id: str | None = None,
    tree_id: str | None = None,
    method: str | None = None,
    status: str | None = Query(default=None, description="queued, running, completed or error"),
) -> Response:
    filters = {"alignment_id": alignment_id, "tree_id": tree_id, "method": method, "status": status}
    return JSONResponse({"jobs": await analyses.list_jobs(user_id, filters)})


@jobs.get(
    "/{jobId}",
    operation_id="getJob",
    summary="A job's status and progress; when completed, its summary with plot data",
    responses={200: {"description": "The job"}, **OWNED},
)
async def get_job(jobId: str, user_id: CurrentUser, analyses: Analyses) -> Response:  # noqa: N803
    return JSONResponse(await analyses.job_detail(user_id, jobId))


DOWNLOAD = {
    **OWNED,
    409: {"model": ServerError, "description": "The job has not completed"},
}


@jobs.get(
    "/{jobId}/table.csv",
    operation_id="downloadJobTable",
    summary="A completed job's table: one row per site or branch, every column HyPhy reports",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV"}, **DOWNLOAD},
)
async def download_table(jobId: str, user_id: CurrentUser, analyses: Analyses) -> Response:  # noqa: N803
    text = await analyses.job_table_csv(user_id, jobId)
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{jobId}-table.csv"'},
    )


@jobs.get(
    "/{jobId}/result.json",
    operation_id="downloadJobResult",
    summary="A completed job's HyPhy JSON as HyPhy wrote it (your sequence names restored)",
    responses={
        200: {"content": {"application/json": {}}, "description": "HyPhy's JSON"},
        **DOWNLOAD,
    },
)
async def download_result(jobId: str, user_id: CurrentUser, analyses: Analyses) -> Response:  # noqa: N803
    text = await analyses.job_result_json(user_id, jobId)
    return Response(
        text,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{jobId}-result.json"'},
    )


@jobs.delete(
    "/{jobId}",
    operation_id="cancelJob",
    summary="Cancel a queued or running job",
    description='The job ends with status "error" and error_message "Cancelled by the '
    'user"; its HyPhy process is killed. 409 if it had already finished.',
    responses={200: {"description": "The cancelled job"}, **OWNED},
)
async def cancel_job(jobId: str, user_id: CurrentUser, analyses: Analyses) -> Response:  # noqa: N803
    return JSONResponse(await analyses.cancel_job(user_id, jobId))
