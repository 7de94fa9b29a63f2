"""Jobs: follow HyPhy analyses, download their results, delete them (methods.py starts them)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from datamonkey_chat.api.deps import Analyses, CurrentUser
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes.chat import UNAUTHORIZED
from datamonkey_chat.api.schemas import (
    ForbiddenError,
    GetJobsList200Response,
    JobStatus,
    NotFoundError,
    ServerError,
)

jobs = APIRouter(prefix="/jobs", tags=["Jobs"])

OWNED = {
    **UNAUTHORIZED,
    403: {"model": ForbiddenError, "description": "Forbidden - User does not own this job"},
    404: {"model": NotFoundError, "description": "Job not found"},
}


@jobs.get(
    "",
    operation_id="getJobsList",
    summary="List the user's jobs, newest first",
    response_model=GetJobsList200Response,
    responses={200: {"description": "The user's jobs"}, **UNAUTHORIZED},
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
    operation_id="getJobById",
    summary="A job's status and progress; when completed, its summary with plot data",
    response_model=JobStatus,
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
    response_class=Response,  # CSV only: no default JSON answer in the document
    summary="A completed job's table: one row per site or branch, every column HyPhy reports",
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
    operation_id="deleteJob",
    summary="Delete a job (a queued or running one is cancelled first)",
    description="Its HyPhy process is killed, the job and its files are deleted: 204.",
    status_code=204,
    responses={204: {"description": "Job deleted"}, **OWNED},
)
async def delete_job(jobId: str, user_id: CurrentUser, analyses: Analyses) -> Response:  # noqa: N803
    await analyses.delete_job(user_id, jobId)
    return Response(status_code=204)
