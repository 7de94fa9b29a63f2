"""Visualizations, as upstream's Datamonkey API 1.2.0 has them: Vega-Lite specs tied to one
of the user's jobs. Handlers stay thin: checks, ownership and storage are in
analyses.visualizations. Bodies are read here, so that every bad field (a spec that is not
an object too) is a 400 with upstream's InvalidDataError `errors`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from datamonkey_chat.api.bodies import json_object
from datamonkey_chat.api.deps import CurrentUser, Visualizations
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes.chat import UNAUTHORIZED, Responses
from datamonkey_chat.api.schemas import (
    CreateVisualizationRequest,
    ForbiddenError,
    InvalidDataError,
    NotFoundError,
    UpdateVisualizationRequest,
    Visualization,
)
from datamonkey_chat.api.schemas import Visualizations as VisualizationsList
from datamonkey_chat.domain.errors import InvalidDataError as InvalidData

router = APIRouter(prefix="/visualizations", tags=["Visualizations"])

BAD_DATA: Responses = {
    400: {"model": InvalidDataError, "description": "Bad Request - Invalid data"}
}
OWNED: Responses = {
    **UNAUTHORIZED,
    403: {
        "model": ForbiddenError,
        "description": "Forbidden - User does not own this visualization",
    },
    404: {"model": NotFoundError, "description": "Visualization not found"},
}
REQUEST_MODELS = (CreateVisualizationRequest, UpdateVisualizationRequest)
CHECKS = (
    "`title`: 1 to 200 characters; `spec`: a JSON object of at most 256 KB serialized, whose "
    "`$schema`, if any, is a Vega-Lite schema URL; `config` and `metadata`: objects of at "
    "most 64 KB. Problems: 400, one `{field, message}` each in `errors`."
)


def request_schemas() -> dict[str, dict[str, Any]]:
    """The documented request bodies (the routes read the bodies themselves)."""
    schemas: dict[str, dict[str, Any]] = {}
    for model in REQUEST_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _documented_body(model: type) -> dict[str, Any]:
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": reference}}}
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        return json_object(await request.body(), strict=True)
    except ValueError as exc:
        problem = {"field": "body", "message": str(exc)}
        raise InvalidData(problem["message"], [problem]) from None


@router.get(
    "",
    operation_id="getVisualizationsList",
    summary="Get a list of visualizations for the authenticated user",
    description="The user's visualizations, oldest first; `job_id` and `dataset_id` narrow "
    "the list. A completed job's own plots are among them (`metadata.generated_by`: "
    "`datamonkey-chat:<method>`).",
    response_model=VisualizationsList,
    responses={200: {"description": "Success - returns user's visualizations"}, **UNAUTHORIZED},
)
async def list_visualizations(
    user_id: CurrentUser,
    visualizations: Visualizations,
    job_id: str | None = Query(default=None, description="Filter visualizations by job ID"),
    dataset_id: str | None = Query(default=None, description="Filter visualizations by dataset ID"),
) -> Response:
    found = await visualizations.list_visualizations(user_id, job_id, dataset_id)
    return JSONResponse({"visualizations": found})


@router.post(
    "",
    operation_id="createVisualization",
    summary="Create a new visualization",
    description="Create and store a new Vega-Lite visualization specification of one of your "
    "jobs (`dataset_id`, optional, one of your datasets). " + CHECKS + " A `job_id` or "
    "`dataset_id` that is not yours is such a problem. `metadata.library` defaults to "
    "vega-lite.",
    status_code=201,
    openapi_extra=_documented_body(CreateVisualizationRequest),
    response_model=Visualization,
    responses={
        201: {"description": "Visualization created successfully"},
        **BAD_DATA,
        **UNAUTHORIZED,
    },
)
async def create_visualization(
    request: Request, user_id: CurrentUser, visualizations: Visualizations
) -> Response:
    created = await visualizations.create(user_id, await _body(request))
    return JSONResponse(created, status_code=201)


@router.get(
    "/{vizId}",
    operation_id="getVisualization",
    summary="Get details for a specific visualization",
    response_model=Visualization,
    responses={200: {"description": "Success"}, **OWNED},
)
async def get_visualization(
    vizId: str,  # noqa: N803
    user_id: CurrentUser,
    visualizations: Visualizations,
) -> Response:
    return JSONResponse(await visualizations.get(user_id, vizId))


@router.put(
    "/{vizId}",
    operation_id="updateVisualization",
    summary="Update a visualization",
    description="Update an existing visualization's title, description, spec, config or "
    "metadata: the fields the body has change, the others stay. `description: null` clears "
    "the description. " + CHECKS,
    openapi_extra=_documented_body(UpdateVisualizationRequest),
    response_model=Visualization,
    responses={
        200: {"description": "Visualization updated successfully"},
        **BAD_DATA,
        **OWNED,
    },
)
async def update_visualization(
    vizId: str,  # noqa: N803
    request: Request,
    user_id: CurrentUser,
    visualizations: Visualizations,
) -> Response:
    updated = await visualizations.update(user_id, vizId, await _body(request))
    return JSONResponse(updated)


@router.delete(
    "/{vizId}",
    operation_id="deleteVisualization",
    summary="Delete a visualization",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "Visualization deleted successfully"}, **OWNED},
)
async def delete_visualization(
    vizId: str,  # noqa: N803
    user_id: CurrentUser,
    visualizations: Visualizations,
) -> Response:
    await visualizations.delete(user_id, vizId)
    return Response(status_code=204)
