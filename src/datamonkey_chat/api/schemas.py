"""Wire models of the Chat contract (names match the contract's schemas) and our extensions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictStr

from datamonkey_chat.domain.text import require_storable


def _storable(value: Any) -> Any:
    return require_storable(value, "text") if isinstance(value, str) else value


# A string a database can store (no NUL, no lone surrogate): anything else is a 400 at the
# edge, not a 500 from the database. Checked before the string's own validation, which
# cannot even measure a lone surrogate. The OpenAPI schema is StrictStr's.
StorableStr = Annotated[StrictStr, BeforeValidator(_storable)]


class Role(StrEnum):
    user = "user"
    assistant = "assistant"


class ChatMessage(BaseModel):
    role: Role
    content: str
    timestamp: int | None = Field(default=None, description="Unix time in milliseconds")
    # Extension (additive): the tool calls and results behind an assistant message.
    tool_events: list[dict[str, Any]] | None = Field(
        default=None, description="Extension: tool calls and results behind this reply"
    )
    # Extension (additive): only in pages (`limit`/`cursor`), where the page needs it.
    id: int | None = Field(
        default=None,
        description="Extension, in paged answers: the message's position in its conversation",
    )


class ChatConversation(BaseModel):
    id: str
    title: str | None = None
    created: int = Field(description="Unix time in milliseconds")
    updated: int = Field(description="Unix time in milliseconds")
    messages: list[ChatMessage] | None = None


class CreateConversationRequest(BaseModel):
    title: StorableStr | None = None


class SendConversationMessageRequest(BaseModel):
    message: StorableStr


class RenameConversationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: StorableStr = Field(min_length=1, max_length=200)


NEXT_CURSOR_DOC = (
    "Extension, in paged answers (`limit`/`cursor`): pass it as `cursor` for the next, older "
    "page; null when there is none"
)


class ListUserConversations200Response(BaseModel):
    conversations: list[ChatConversation]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR_DOC)


class GetConversationMessages200Response(BaseModel):
    messages: list[ChatMessage]
    next_cursor: str | None = Field(default=None, description=NEXT_CURSOR_DOC)


class SendConversationMessage200Response(BaseModel):
    message: ChatMessage


class UnauthorizedError(BaseModel):
    code: int = 401
    message: str


class ForbiddenError(BaseModel):
    code: int = 403
    message: str


class NotFoundError(BaseModel):
    error: str
    status: int = 404


class ServerError(BaseModel):
    error: str | None = None
    code: str | None = None
    details: str | None = None


class Status(StrEnum):
    healthy = "healthy"
    unhealthy = "unhealthy"
    unknown = "unknown"


class Health_details(BaseModel):  # noqa: N801 -- upstream's schema name
    """Upstream's four components; `rate_limits` (redis, in-process or off) is ours."""

    model_config = ConfigDict(extra="allow")

    database: Status | None = None
    job_scheduler: Status | None = Field(default=None, description="The job queue's runner")
    llm: Status | None = None
    datamonkey: Status | None = Field(
        default=None, description="Whether this server can run HyPhy analyses"
    )
    rate_limits: str | None = Field(
        default=None,
        description="Extension: where rate limits are counted: redis, in-process or off",
    )


class Health(BaseModel):
    status: Status
    details: Health_details


class DataProblem(BaseModel):
    code: str
    message: str
    severity: str | None = None
    sequence: str | None = None
    position: int | None = Field(default=None, description="1-based alignment column")
    codon: int | None = None


class InvalidDataErrorItem(BaseModel):
    field: str
    message: str


class ValidationFailed(BaseModel):
    """422: the data cannot be used (upload) or does not suit the method (job start).

    `errors` is upstream's InvalidDataError; the rest is ours."""

    errors: list[InvalidDataErrorItem]
    error: str
    code: str
    details: str
    problems: list[DataProblem]


DATA_PROBLEMS_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationFailed, "description": "The data has problems; each is listed"}
}


# ---------------------------------------------------------------- upstream's datasets

# These describe answers that routes build as dicts (orjson, no validation on the hot
# path): `response_model` documents them, a returned JSONResponse skips their validation.


class Dataset(BaseModel):
    """Upstream's Dataset (DatasetMeta + id, created, updated, content); the facts found
    when the file was checked are ours, beside them."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(pattern=r"^[a-zA-Z0-9]+$")
    name: str | None = None
    description: str | None = None
    type: str | None = Field(
        default=None,
        description="The `type` given in the upload's meta, unchanged; without one, `kind`",
    )
    created: datetime = Field(description="ISO 8601, UTC")
    updated: datetime = Field(description="ISO 8601, UTC")
    content: str | None = Field(
        default=None, description="The file's text, only with `include_content=true`"
    )
    kind: Literal["alignment", "tree"] = Field(description="Extension: what the file holds")
    data_type: str | None = Field(
        default=None, description="Extension: nucleotide or protein (alignments)"
    )
    format: str | None = Field(default=None, description="Extension: fasta, nexus, phylip...")
    sequences: int | None = Field(default=None, description="Extension")
    sites: int | None = Field(default=None, description="Extension")
    codons: int | None = Field(default=None, description="Extension")
    has_tree: bool | None = Field(default=None, description="Extension: a NEXUS tree inside")
    codon_ready: bool | None = Field(default=None, description="Extension")
    genetic_code: str | None = Field(default=None, description="Extension")
    size: int | None = Field(default=None, description="Extension: bytes")
    problems: list[DataProblem] = Field(
        default_factory=list, description="Extension: warnings found (errors are refused)"
    )


class Datasets(BaseModel):
    datasets: list[Dataset]


# ---------------------------------------------------------------- upstream's method shapes


class JobStatus(BaseModel):
    """Upstream's JobStatus; our job records add progress, stage, options, notes, times."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    alignment_id: str | None = None
    tree_id: str | None = None
    status: Literal["queued", "running", "completed", "error"]
    error_message: str | None = None
    method: str | None = Field(default=None, description="The HyPhy method used for this job")
    id: str | None = Field(default=None, description="Extension: the same as job_id")
    options: dict[str, Any] | None = Field(default=None, description="Extension: as checked")
    progress: float | None = Field(default=None, description="Extension: 0 to 1")
    stage: str | None = Field(default=None, description="Extension: what HyPhy is doing")
    notes: list[str] | None = Field(default=None, description="Extension")
    created: int | None = Field(default=None, description="Extension: Unix time in ms")
    started: int | None = Field(default=None, description="Extension: Unix time in ms")
    finished: int | None = Field(default=None, description="Extension: Unix time in ms")
    summary: dict[str, Any] | None = Field(
        default=None,
        description="Extension, on GET /jobs/{jobId} once completed: the summary, plot data",
    )


class JobResult(JobStatus):
    """A method's result (upstream's FelResult, BustedResult...: `job_id` and `result`), with
    the job's status fields. `result` is HyPhy's JSON, not described further here."""

    result: dict[str, Any] | None = Field(
        default=None,
        description="HyPhy's JSON (your sequence names restored), once the job completed",
    )


class GetJobsList200Response(BaseModel):
    jobs: list[JobStatus]


class MethodParameter(BaseModel):
    name: str
    description: str | None = None
    required: bool = False
    type: str
    default: str | None = Field(default=None, description="The default, as JSON text")


class MethodEntry(BaseModel):
    """Upstream's method entry; `runnable`, `options` and the catalog's facts are additive."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    description: str
    status: Literal["available", "beta", "deprecated"] = Field(
        description="available: this server runs it; deprecated: it cannot run here (see note)"
    )
    start_endpoint: str
    result_endpoint: str
    parameters: list[MethodParameter]


class MethodsList(BaseModel):
    methods: list[MethodEntry]


# ---------------------------------------------------------------- upstream's visualizations


class InvalidDataError(BaseModel):
    """400: upstream's InvalidDataError, one `{field, message}` per problem; the rest is ours."""

    errors: list[InvalidDataErrorItem]
    error: str | None = None
    code: str | None = None
    details: str | None = None


class Visualization_metadata(BaseModel):  # noqa: N801 (upstream's schema name)
    """Additional metadata about the visualization."""

    model_config = ConfigDict(extra="allow")

    library: str | None = Field(default=None, description="Visualization library used")
    generated_by: str | None = Field(
        default=None,
        description="Tool or method that generated this visualization; this server's own "
        "plots of a job say `datamonkey-chat:<method>`",
    )
    prompt: str | None = Field(
        default=None, description="Original prompt used to generate the visualization"
    )


class _VisualizationFields(BaseModel):
    """What a stored visualization and a create request share (upstream's descriptions)."""

    job_id: str = Field(description="Job ID associated with this visualization")
    dataset_id: str | None = Field(
        default=None, description="Dataset ID associated with this visualization (optional)"
    )
    title: str = Field(description="Title of the visualization")
    description: str | None = Field(
        default=None, description="Description of what the visualization shows"
    )
    spec: dict[str, Any] = Field(description="The Vega-Lite visualization specification")
    config: dict[str, Any] | None = Field(
        default=None, description="Additional configuration options"
    )


class Visualization(_VisualizationFields):
    viz_id: str = Field(description="Unique identifier for the visualization")
    metadata: Visualization_metadata | None = None
    created_at: AwareDatetime | None = Field(
        default=None, description="Timestamp when the visualization was created"
    )
    updated_at: AwareDatetime | None = Field(
        default=None, description="Timestamp when the visualization was last updated"
    )


class Visualizations(BaseModel):
    visualizations: list[Visualization] | None = None


class CreateVisualizationRequest(_VisualizationFields):
    metadata: dict[str, Any] | None = Field(
        default=None, description="Additional metadata about the visualization"
    )


class UpdateVisualizationRequest(BaseModel):
    title: str | None = Field(default=None, description="Updated title of the visualization")
    description: str | None = Field(default=None, description="Updated description")
    spec: dict[str, Any] | None = Field(
        default=None, description="Updated Vega-Lite visualization specification"
    )
    config: dict[str, Any] | None = Field(default=None, description="Updated configuration options")
    metadata: dict[str, Any] | None = Field(default=None, description="Updated metadata")
