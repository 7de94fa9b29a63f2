"""Methods: the catalog, and per method upstream's three operations.

For every method of the upstream Datamonkey API 1.2.0 (catalog/upstream_methods.json) this
registers `POST /methods/{path}-start`, `GET /methods/{path}-result?job_id=` and
`POST /methods/{path}-result` under upstream's operation ids, tags and request schema names,
so a client generated from our document has upstream's method names. The request body is the
method's options model plus `alignment`, `tree` and `user_token` (which upstream's clients
send in the body). `/methods/{method}-start` for any catalog name or alias stays as a hidden
fallback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, create_model

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.methods.base import MethodOptions
from datamonkey_chat.api.bodies import json_object
from datamonkey_chat.api.deps import (
    Analyses,
    CurrentUser,
    UserTokenHeader,
    presented_token,
    session_service,
)
from datamonkey_chat.api.responses import JSONResponse
from datamonkey_chat.api.routes.chat import UNAUTHORIZED
from datamonkey_chat.api.schemas import (
    DATA_PROBLEMS_RESPONSE,
    ForbiddenError,
    JobResult,
    JobStatus,
    MethodsList,
    NotFoundError,
)
from datamonkey_chat.catalog import UpstreamMethod, load_upstream_methods
from datamonkey_chat.domain.errors import InvalidInputError, ValidationFailedError

router = APIRouter(prefix="/methods", tags=["Methods"])

DATASET_ID = r"^[a-zA-Z0-9]+$"
START_ERRORS = {
    **UNAUTHORIZED,
    403: {"model": ForbiddenError, "description": "User does not own a dataset"},
    404: {"model": NotFoundError, "description": "Dataset not found"},
    **DATA_PROBLEMS_RESPONSE,
}
RESULT_ERRORS = {
    **UNAUTHORIZED,
    403: {"model": ForbiddenError, "description": "User does not own this job"},
    404: {"model": NotFoundError, "description": "Job not found"},
}
INPUT_FIELDS = ("alignment", "tree", "user_token")


class _Inputs(BaseModel):
    """What every start request names besides the options (documented with each method)."""

    alignment: str = Field(pattern=DATASET_ID, description="Id of the alignment dataset")
    tree: str | None = Field(
        default=None,
        pattern=DATASET_ID,
        description="Id of a tree dataset, or of a NEXUS alignment whose own tree to use; "
        "without one, the alignment's own tree or a neighbour-joining tree is used",
    )
    user_token: str | None = Field(
        default=None,
        description="Who starts the job, when no user_token header comes (upstream's clients "
        "send it here; getBGMJob only here)",
    )


class _TreeInputs(_Inputs):
    """The inputs of a method that reads only a tree (upstream's SlatkinRequest: `tree`)."""

    alignment: str | None = Field(  # type: ignore[assignment]
        default=None,
        pattern=DATASET_ID,
        description="Optional: this method reads only the tree. When given, the tree is "
        "`tree`, else the alignment's own, else a neighbour-joining tree built from it",
    )
    tree: str | None = Field(
        default=None,
        pattern=DATASET_ID,
        description="Id of a tree dataset, or of a NEXUS alignment whose own tree to use; "
        "required when no `alignment` is given",
    )


class _NoOptions(MethodOptions):
    """A method this server cannot run still gets upstream's route (answering why not)."""

    model_config = ConfigDict(extra="allow")


@router.get(
    "",
    operation_id="getMethodsList",
    summary="The HyPhy methods, their parameters and whether this server runs them",
    response_model=MethodsList,
)
async def list_methods(analyses: Analyses) -> Response:
    return JSONResponse({"methods": analyses.methods()})


REQUEST_MODELS: dict[str, type[BaseModel]] = {}  # schema name -> model, for the document


def request_model(method_id: str, schema_name: str) -> type[BaseModel]:
    """Upstream's request model: the method's options (or any) plus the dataset ids."""
    module = registry().get(method_id)
    options = module.Options if module else _NoOptions
    tree_only = module is not None and not module.requirements.needs_alignment
    model = create_model(schema_name, __base__=(options, _TreeInputs if tree_only else _Inputs))
    REQUEST_MODELS[schema_name] = model
    return model


def request_schemas() -> dict[str, dict[str, Any]]:
    """The request models' JSON schemas (with their shared definitions), for components."""
    schemas: dict[str, dict[str, Any]] = {}
    for name, model in REQUEST_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


def _documented_body(schema_name: str) -> dict[str, Any]:
    """The body is read by the endpoint (so the service checks text, options and datasets in
    its own order and words); the document still names upstream's request schema."""
    reference = {"$ref": f"#/components/schemas/{schema_name}"}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": reference}}}
    }


async def read_body(request: Request) -> dict[str, Any]:
    try:
        return json_object(await request.body())
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


async def body_or_header_user(request: Request, body: dict[str, Any]) -> str:
    """The caller: the `user_token` header (or a Bearer token), else the body's `user_token`,
    which upstream's clients send there (and getBGMJob only there)."""
    token = presented_token(request)
    if token is None and isinstance(body.get("user_token"), str):
        token = body["user_token"]
    return await session_service(request).authenticate(token)


def request_inputs(body: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """(alignment, tree, options) from a start or result body; user_token is not an option.
    Which ids a method needs is the service's check (a tree-only method needs no alignment)."""
    for field in ("alignment", "tree"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise ValidationFailedError(
                f"{field}: must be a dataset id",
                [
                    {
                        "code": "invalid_option",
                        "field": field,
                        "message": f"{field} must be a dataset id",
                    }
                ],
            )
    options = {k: v for k, v in body.items() if k not in INPUT_FIELDS}
    return body.get("alignment") or None, body.get("tree") or None, options


@dataclass(frozen=True)
class StartRequest:
    user_id: str
    alignment: str | None
    tree: str | None
    options: dict[str, Any]


async def read_request(request: Request) -> StartRequest:
    """Who asks, and for which datasets and options, from a start or POST -result body."""
    body = await read_body(request)
    user_id = await body_or_header_user(request, body)
    return StartRequest(user_id, *request_inputs(body))


Endpoint = Callable[..., Awaitable[Response]]


def _start(method_id: str) -> Endpoint:
    async def start(
        request: Request, analyses: Analyses, user_token: UserTokenHeader = None
    ) -> Response:
        asked = await read_request(request)
        job = await analyses.start_job(
            asked.user_id, method_id, asked.alignment, asked.tree, asked.options
        )
        return JSONResponse(job)

    return start


def _result_by_id(method_id: str) -> Callable[..., Awaitable[Response]]:
    async def result(
        user_id: CurrentUser, analyses: Analyses, job_id: str = Query(description="The job's id")
    ) -> Response:
        return JSONResponse(await analyses.job_result(user_id, method_id, job_id))

    return result


def _result_by_request(method_id: str) -> Endpoint:
    async def result(
        request: Request, analyses: Analyses, user_token: UserTokenHeader = None
    ) -> Response:
        asked = await read_request(request)
        job_id = await analyses.find_job(
            asked.user_id, method_id, asked.alignment, asked.tree, asked.options
        )
        return JSONResponse(await analyses.job_result(asked.user_id, method_id, job_id))

    return result


def add_method_routes(method_id: str, upstream: UpstreamMethod) -> None:
    request_model(method_id, upstream.request_schema)
    # Upstream's result schema name, for the document only (the route answers prebuilt JSON)
    result_model = create_model(upstream.result_schema, __base__=JobResult)
    body = _documented_body(upstream.request_schema)
    base = f"/{upstream.path}"
    tags: list[str | Any] = [upstream.tag]
    router.add_api_route(
        f"{base}-start",
        _start(method_id),
        methods=["POST"],
        openapi_extra=body,
        operation_id=upstream.start_operation,
        summary=f"Start a {upstream.tag} job",
        description="Checks the options and the data, then queues the job: 200 with its "
        "JobStatus. A bad option or data the method cannot use: 422 listing each problem "
        "(`errors`: field and message, as upstream's InvalidDataError).",
        tags=tags,
        response_model=JobStatus,
        responses=START_ERRORS,
    )
    router.add_api_route(
        f"{base}-result",
        _result_by_id(method_id),
        methods=["GET"],
        operation_id=upstream.result_operation,
        summary=f"A {upstream.tag} job's status and, once completed, HyPhy's JSON",
        description="`{job_id, result}`; `result` (HyPhy's JSON, your sequence names "
        "restored) is present once the job completed; `status` and `summary` are additive.",
        tags=tags,
        response_model=result_model,
        responses={200: {"description": "The job and its result"}, **RESULT_ERRORS},
    )
    router.add_api_route(
        f"{base}-result",
        _result_by_request(method_id),
        methods=["POST"],
        openapi_extra=body,
        operation_id=upstream.result_by_request_operation,
        summary=f"The newest {upstream.tag} job with these datasets and options",
        description="404 when no job of yours matches the request's datasets and options.",
        tags=tags,
        response_model=result_model,
        responses={200: {"description": "The job and its result"}, **RESULT_ERRORS},
    )


for _method_id, _upstream in load_upstream_methods().items():
    add_method_routes(_method_id, _upstream)


@router.post("/{method}-start", include_in_schema=False)
async def start_by_name(method: str, request: Request, analyses: Analyses) -> Response:
    """Any catalog name or alias (e.g. `multi-hit`, `slatkin-maddison`)."""
    asked = await read_request(request)
    job = await analyses.start_job(
        asked.user_id, method, asked.alignment, asked.tree, asked.options
    )
    return JSONResponse(job)


@router.get("/{method}-result", include_in_schema=False)
async def result_by_name(
    method: str, user_id: CurrentUser, analyses: Analyses, job_id: str = Query()
) -> Response:
    return JSONResponse(await analyses.job_result(user_id, method, job_id))
