"""Datasets, shaped like the Datamonkey API's File Upload endpoints. Handlers stay thin:
validation, ownership and storage live in analyses.service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile

from datamonkey_chat.api.bodies import json_object
from datamonkey_chat.api.deps import (
    SESSION_HEADER,
    TOKEN_HEADER_DOC,
    Analyses,
    CurrentUser,
    user_or_new_session,
)
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes.chat import UNAUTHORIZED
from datamonkey_chat.api.schemas import (
    DATA_PROBLEMS_RESPONSE,
    Dataset,
    Datasets,
    ForbiddenError,
    NotFoundError,
    ServerError,
)
from datamonkey_chat.domain.errors import InvalidInputError

router = APIRouter(prefix="/datasets", tags=["Datasets"])

OWNED = {
    **UNAUTHORIZED,
    403: {"model": ForbiddenError, "description": "Forbidden - User does not own this dataset"},
    404: {"model": NotFoundError, "description": "Dataset not found"},
}
REJECTED = (
    "The file is validated before it is stored. If it has problems the answer is 422 with "
    "`problems`: a list of `{code, message, severity, sequence, position, codon}`, one per "
    "problem, naming the sequence and the 1-based site; 413 when it is over the size limit; "
    "429 while the same client address has another upload being checked."
)


def _meta(meta: str | None) -> dict[str, Any]:
    if not meta:
        return {}
    try:
        return json_object(meta.encode())
    except ValueError:
        raise InvalidInputError("meta must be a JSON object string") from None


@router.post(
    "",
    operation_id="PostDataset",
    openapi_extra=TOKEN_HEADER_DOC,
    summary="Upload an alignment or tree",
    description="Multipart upload: `file` (FASTA, NEXUS, PHYLIP alignment or Newick tree) and "
    "optional `meta`, a JSON object string with `name`, `description` and `type` "
    "(any text, returned unchanged; `alignment`, `tree` or a format name also says how to "
    "parse the file, otherwise the content decides). Like creating a conversation, a "
    "missing or invalid token starts a new session, whose token comes back in the "
    "X-Session-Token header. "
    'The answer is upstream\'s `Datasets`: `{"datasets": [the dataset]}`. ' + REJECTED,
    status_code=201,
    response_model=Datasets,
    responses={
        201: {
            "description": "The dataset as stored",
            "headers": {SESSION_HEADER: {"schema": {"type": "string"}}},
        },
        413: {"description": "The file is over the upload size limit"},
        429: {
            "model": ServerError,
            "description": "Too many uploads from this session, or this client address "
            "already has an upload being checked (`code`: rate_limited); retry after "
            "`Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
        **DATA_PROBLEMS_RESPONSE,
    },
)
async def upload_dataset(
    request: Request,
    analyses: Analyses,
    file: UploadFile = File(description="The alignment or tree file"),
    meta: str | None = Form(default=None, description="JSON: name, description, type"),
) -> Response:
    data = await file.read(request.app.state.settings.max_upload_bytes + 1)
    client = request.client.host if request.client else None  # parses in flight per address
    # Checked before any session starts: a refused file leaves nothing behind.
    checked = await analyses.check_dataset(data, file.filename, _meta(meta), client=client)
    user_id, headers = await user_or_new_session(request)
    dataset = await analyses.store_dataset(user_id, checked)
    return JSONResponse({"datasets": [dataset]}, status_code=201, headers=headers)


@router.get(
    "",
    operation_id="getDatasetsList",
    summary="List the user's datasets, newest first",
    response_model=Datasets,
    responses={200: {"description": "The user's datasets"}, **UNAUTHORIZED},
)
async def list_datasets(user_id: CurrentUser, analyses: Analyses) -> Response:
    return JSONResponse({"datasets": await analyses.list_datasets(user_id)})


@router.get(
    "/{datasetId}",
    operation_id="getDatasetById",
    summary="Get a dataset",
    response_model=Dataset,
    responses={200: {"description": "The dataset"}, **OWNED},
)
async def get_dataset(
    datasetId: str,  # noqa: N803
    user_id: CurrentUser,
    analyses: Analyses,
    include_content: bool = Query(default=False, description="Include the file's text"),
) -> Response:
    return JSONResponse(await analyses.get_dataset(user_id, datasetId, include_content))


@router.delete(
    "/{datasetId}",
    operation_id="deleteDataset",
    summary="Delete a dataset",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Dataset deleted"}, **OWNED},
)
async def delete_dataset(
    datasetId: str,  # noqa: N803
    user_id: CurrentUser,
    analyses: Analyses,
) -> Response:
    await analyses.delete_dataset(user_id, datasetId)
    return Response(status_code=204)
