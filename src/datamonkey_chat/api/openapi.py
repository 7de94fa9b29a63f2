"""Our OpenAPI document: FastAPI's, shaped so the contract's generated client comes out unchanged.

The contract (`../shared/contract/ChatApi.md`, MODELS.md) is the documentation that OpenAPI
Generator writes for the `python` client of the upstream Datamonkey API. For the client
generated from *our* document to be that same client, the document must be OpenAPI 3.0
(FastAPI emits 3.1), name the public server, and state the facts that FastAPI cannot infer
from the code: the tables below. Everything that is not part of the contract (rename, health,
analyses...) stays in the document under other tags, so it lands in other `*Api.md` files.

The shaping is data-driven and general (3.1 -> 3.0 schema conversion, a table of contract
operations and a table of schema facts); nothing here edits generated text.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from datamonkey_chat.catalog import load_upstream_methods

log = logging.getLogger(__name__)

Json = dict[str, Any]

OPENAPI_VERSION = "3.0.3"
PUBLIC_SERVER = "http://datamonkey.org/api/v1"
CONTRACT_TAG = "Chat"
EXTENSIONS_TAG = "Chat extensions"
TOKEN_HEADER = "user_token"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@dataclass(frozen=True)
class ContractOperation:
    """What the contract says about one operation, beyond what the route declares."""

    responses: tuple[str, ...]
    token_required: bool = True
    token_description: str = "Token identifying the user"
    body_required: bool | None = None  # None: the operation has no request body


# The six operations of ChatApi.md: exactly these responses (descriptions come from the route
# decorators), the `user_token` header required except on create (the code declares it
# optional everywhere so that a missing token gets our 401 body instead of a 422).
CONTRACT_OPERATIONS: dict[str, ContractOperation] = {
    "createConversation": ContractOperation(
        responses=("201", "500"),
        token_required=False,
        token_description="Token identifying the user. If not provided, a new session will be "
        "created automatically.",
        body_required=False,
    ),
    "listUserConversations": ContractOperation(responses=("200", "401")),
    "getConversation": ContractOperation(responses=("200", "401", "403", "404")),
    "deleteConversation": ContractOperation(responses=("204", "401", "403", "404")),
    "getConversationMessages": ContractOperation(responses=("200", "401", "403", "404")),
    "sendConversationMessage": ContractOperation(
        responses=("200", "401", "403", "404"), body_required=True
    ),
}

# Operations outside the contract whose `user_token` header upstream documents as optional,
# with upstream's description. Upload starts a session without one; the two reads answer 401
# without one (this server has no public records), as upstream's "required if private" allows.
TOKEN_OPTIONAL_EXTENSIONS: dict[str, str] = {
    "PostDataset": "Token identifying the user. If not provided, a new session will be "
    "created automatically.",
    "getDatasetById": "Token identifying the user (required if dataset is private)",
    "getJobById": "Token identifying the user (required if job is private)",
    "getVisualization": "Token identifying the user. Required for private visualizations, "
    "optional for public ones.",
}

# The operations of the upstream Datamonkey API 1.2.0 besides Chat (whose contract has no
# pretty_print): each documents upstream's `pretty_print` query parameter, which the wire
# middleware honours on every route (api/middleware.py).
UPSTREAM_OPERATIONS: frozenset[str] = frozenset(
    {
        "getHealth",
        "getJobsList",
        "getJobById",
        "deleteJob",
        "getDatasetsList",
        "PostDataset",
        "getDatasetById",
        "deleteDataset",
        "getVisualizationsList",
        "createVisualization",
        "getVisualization",
        "updateVisualization",
        "deleteVisualization",
        "getMethodsList",
        *(
            operation
            for method in load_upstream_methods().values()
            for operation in (
                method.start_operation,
                method.result_operation,
                method.result_by_request_operation,
            )
        ),
    }
)
PRETTY_PRINT_PARAMETER: Json = {
    "name": "pretty_print",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean"},
    "description": "Pretty print response",
}

# Descriptions of path parameters, wherever they appear.
PATH_PARAMETER_DESCRIPTIONS = {"conversationId": "ID of the conversation"}


@dataclass(frozen=True)
class SchemaFacts:
    """MODELS.md facts about one component schema."""

    required: tuple[str, ...] = ()
    int64: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()  # properties the server always sends with a value


CONTRACT_SCHEMAS: dict[str, SchemaFacts] = {
    "ChatMessage": SchemaFacts(
        required=("role", "content"), int64=("timestamp",), not_null=("timestamp",)
    ),
    "ChatConversation": SchemaFacts(
        required=("id", "created", "updated"), int64=("created", "updated")
    ),
    "UnauthorizedError": SchemaFacts(required=("code", "message")),
    "ForbiddenError": SchemaFacts(required=("code", "message")),
    "NotFoundError": SchemaFacts(required=("error", "status")),
}

# FastAPI documents a 422 for every operation with parameters; our error handler answers
# validation failures with 400 and a ServerError body instead (see api/errors.py).
VALIDATION_RESPONSE = {
    "description": "Invalid request",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServerError"}}},
}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")

# Counted by api/rate_limits.py's middleware, which the routes cannot declare. The contract's
# create and send are limited too, but their responses must stay the contract's (README).
RATE_LIMITED_EXTENSIONS = frozenset(
    {"PostDataset", *(method.start_operation for method in load_upstream_methods().values())}
)
RATE_LIMITED_RESPONSE = {
    "description": "Too many requests from this session or address; retry after the "
    "number of seconds in Retry-After (`code`: rate_limited)",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServerError"}}},
}


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    """FastAPI's automatic 422, as opposed to one an operation declares itself."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return str(schema.get("$ref", "")).endswith("/HTTPValidationError")


def install_openapi(
    app: FastAPI, prefix: str, extra_schemas: Callable[[], dict[str, Json]] | None = None
) -> None:
    """`extra_schemas`: components of bodies that routes read themselves (named by $ref)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            if extra_schemas is not None:
                components = document.setdefault("components", {}).setdefault("schemas", {})
                for name, schema in extra_schemas().items():
                    components.setdefault(name, schema)
            app.openapi_schema = shape_document(document, prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def shape_document(document: Json, prefix: str) -> Json:
    """FastAPI's 3.1 document -> our 3.0 document that generates the contract's client."""
    document = copy.deepcopy(document)
    document["openapi"] = OPENAPI_VERSION
    for key in ("webhooks", "jsonSchemaDialect"):
        document.pop(key, None)
    document["servers"] = [
        {"url": PUBLIC_SERVER, "description": "The public Datamonkey API"},
        {"url": prefix, "description": "This server"},
    ]
    document["paths"] = _relative_paths(document.get("paths", {}), prefix)
    components = document.setdefault("components", {})
    components.pop("securitySchemes", None)
    document.pop("security", None)

    schemas = components.setdefault("schemas", {})
    _inline_enum_components(document, schemas)
    for name, schema in list(schemas.items()):
        schemas[name] = to_openapi30_schema(schema)
    _apply_schema_facts(schemas)

    for _path, _method, operation in iter_operations(document):
        _shape_operation(operation)
    _prune_unreferenced_schemas(document)
    return document


def iter_operations(document: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _relative_paths(paths: Json, prefix: str) -> Json:
    """Paths relative to the servers' base URL (the generator prints that URL as the host)."""
    relative: Json = {}
    for path, item in paths.items():
        if path == prefix or path.startswith(prefix + "/"):
            relative[path[len(prefix) :] or "/"] = item
        else:
            log.warning("left out of the OpenAPI document (not under %s): %s", prefix, path)
    return relative


def _shape_operation(operation: Json) -> None:
    contract = CONTRACT_OPERATIONS.get(operation.get("operationId", ""))
    if contract is None:
        # The Chat tag is the contract's: anything else goes beside it, never into ChatApi.md.
        tags = operation.get("tags") or []
        operation["tags"] = [EXTENSIONS_TAG if tag == CONTRACT_TAG else tag for tag in tags]
    else:
        operation["tags"] = [CONTRACT_TAG]
        operation.pop("description", None)  # the generator would print it under the summary
        operation.pop("security", None)

    if operation.get("operationId") in UPSTREAM_OPERATIONS:
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == PRETTY_PRINT_PARAMETER["name"] for p in parameters):
            parameters.insert(0, copy.deepcopy(PRETTY_PRINT_PARAMETER))  # first, as upstream
    for parameter in operation.get("parameters", []):
        _shape_parameter(parameter, operation.get("operationId", ""), contract)

    body = operation.get("requestBody")
    if body is not None:
        for media in body.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _request_body_schema(to_openapi30_schema(media["schema"]))
        if contract is not None and contract.body_required is not None:
            body["required"] = contract.body_required

    responses = operation.setdefault("responses", {})
    if contract is not None:
        missing = [code for code in contract.responses if code not in responses]
        if missing:
            raise ValueError(f"{operation['operationId']} does not declare responses {missing}")
        operation["responses"] = {code: responses[code] for code in contract.responses}
    elif "422" in responses and _is_fastapi_validation(responses["422"]):
        responses.pop("422")
        responses.setdefault("400", copy.deepcopy(VALIDATION_RESPONSE))
    if contract is None and operation.get("operationId") in RATE_LIMITED_EXTENSIONS:
        responses.setdefault("429", copy.deepcopy(RATE_LIMITED_RESPONSE))
    for response in operation["responses"].values():
        for media in response.get("content", {}).values():
            if "schema" in media:
                media["schema"] = to_openapi30_schema(media["schema"])
        for header in response.get("headers", {}).values():
            if "schema" in header:
                header["schema"] = to_openapi30_schema(header["schema"])


def _shape_parameter(
    parameter: Json, operation_id: str, contract: ContractOperation | None
) -> None:
    schema = to_openapi30_schema(parameter.get("schema", {}))
    # A parameter is absent or present; `nullable` and the schema's copy of the description
    # mean nothing to a client.
    schema.pop("nullable", None)
    if schema.get("description") == parameter.get("description"):
        schema.pop("description", None)
    parameter["schema"] = schema
    name = parameter.get("name")
    if parameter.get("in") == "path" and name in PATH_PARAMETER_DESCRIPTIONS:
        parameter["description"] = PATH_PARAMETER_DESCRIPTIONS[name]
    if parameter.get("in") == "header" and name == TOKEN_HEADER:
        # Declared optional in the code (a missing token gets our 401, not a 422); documented
        # as what it is: required, but on create (the contract's) and on extensions that
        # also start sessions.
        if contract is not None:
            parameter["required"] = contract.token_required
            parameter["description"] = contract.token_description
        else:
            optional = TOKEN_OPTIONAL_EXTENSIONS.get(operation_id)
            parameter["required"] = optional is None
            if optional is not None:
                parameter["description"] = optional


def _request_body_schema(schema: Json) -> Json:
    """A body schema that may be null says the body is optional; `required` already says so."""
    if schema.get("nullable") and list(schema) in (["allOf", "nullable"], ["nullable", "allOf"]):
        if len(schema["allOf"]) == 1:
            only: Json = schema["allOf"][0]
            return only
    schema.pop("nullable", None)
    return schema


# --- JSON Schema (OpenAPI 3.1) -> OpenAPI 3.0 Schema Object -------------------------------

_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_SINGLES = ("items", "not", "additionalProperties")


def to_openapi30_schema(schema: Any) -> Any:
    """Convert one schema (recursively) from JSON Schema 2020-12 to an OpenAPI 3.0 schema."""
    if not isinstance(schema, dict):
        return schema
    result: Json = dict(schema)
    for key in _SCHEMA_LISTS:
        if key in result:
            result[key] = [to_openapi30_schema(s) for s in result[key]]
    for key in _SCHEMA_SINGLES:
        if isinstance(result.get(key), dict):
            result[key] = to_openapi30_schema(result[key])
    if isinstance(result.get("properties"), dict):
        result["properties"] = {
            name: to_openapi30_schema(s) for name, s in result["properties"].items()
        }
    if "prefixItems" in result:  # tuples: 3.0 can only say "an array of any of these"
        prefix_items = [to_openapi30_schema(s) for s in result.pop("prefixItems")]
        result.setdefault("items", {"anyOf": prefix_items} if prefix_items else {})

    _fold_null_alternatives(result)
    if isinstance(result.get("type"), list):
        types = [t for t in result["type"] if t != "null"]
        if len(types) < len(result["type"]):
            result["nullable"] = True
        if len(types) == 1:
            result["type"] = types[0]
        else:
            del result["type"]
            result["anyOf"] = [{"type": t} for t in types]
    if "const" in result:
        result["enum"] = [result.pop("const")]
    if "examples" in result:
        examples = result.pop("examples")
        if isinstance(examples, list) and examples:
            result["example"] = examples[0]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = result.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            result[limit] = value
            result[bound] = True
    if "contentMediaType" in result or "contentEncoding" in result:
        encoding = result.pop("contentEncoding", None)
        result.pop("contentMediaType", None)
        result.setdefault("format", "byte" if encoding == "base64" else "binary")
    for key in ("title", "$schema", "$id", "$comment"):
        result.pop(key, None)
    return result


def _fold_null_alternatives(result: Json) -> None:
    """`anyOf: [X, {type: null}]` -> X with `nullable: true` (a $ref X goes in an allOf)."""
    for key in ("anyOf", "oneOf"):
        alternatives = result.get(key)
        if not isinstance(alternatives, list):
            continue
        others = [a for a in alternatives if a != {"type": "null"}]
        if len(others) == len(alternatives):
            continue
        result["nullable"] = True
        if len(others) != 1:
            result[key] = others
            continue
        del result[key]
        (only,) = others
        if "$ref" in only:
            result["allOf"] = [only]
        else:
            for name, value in only.items():
                result.setdefault(name, value)


# --- Components -----------------------------------------------------------------------------


def _walk(node: Any, visit: Callable[[Json], None]) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _ref_name(ref: Any) -> str | None:
    prefix = "#/components/schemas/"
    return ref[len(prefix) :] if isinstance(ref, str) and ref.startswith(prefix) else None


def _schema_refs(node: Any) -> list[str]:
    names: list[str] = []

    def collect(child: Json) -> None:
        name = _ref_name(child.get("$ref"))
        if name:
            names.append(name)

    _walk(node, collect)
    return names


def _inline_enum_components(document: Json, schemas: Json) -> None:
    """Pydantic names each Enum class; the contract's enums (ChatMessage.role) are inline."""
    enums = {
        name: schema
        for name, schema in schemas.items()
        if "enum" in schema and "properties" not in schema
    }
    if not enums:
        return

    def inline(node: Json) -> None:
        name = _ref_name(node.get("$ref"))
        if name in enums:
            del node["$ref"]
            for key, value in copy.deepcopy(enums[name]).items():
                node.setdefault(key, value)

    _walk(document, inline)
    for name in enums:
        del schemas[name]


def _apply_schema_facts(schemas: Json) -> None:
    for name, facts in CONTRACT_SCHEMAS.items():
        schema = schemas.get(name)
        if schema is None:
            raise ValueError(f"the contract's schema {name} is not in the document")
        properties = schema.get("properties", {})
        for prop in (*facts.required, *facts.int64, *facts.not_null):
            if prop not in properties:
                raise ValueError(f"the contract's {name}.{prop} is not in the document")
        required = list(schema.get("required", []))
        schema["required"] = required + [p for p in facts.required if p not in required]
        for prop in facts.int64:
            properties[prop]["type"] = "integer"
            properties[prop]["format"] = "int64"
        for prop in (*facts.required, *facts.not_null):
            properties[prop].pop("nullable", None)


def _prune_unreferenced_schemas(document: Json) -> None:
    schemas: Json = document.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    # Keep what paths reach, transitively.
    reached: set[str] = set()
    pending: list[Any] = [document.get("paths", {})]
    while pending:
        for name in _schema_refs(pending.pop()):
            if name not in reached and name in schemas:
                reached.add(name)
                pending.append(schemas[name])
    for name in list(schemas):
        if name not in reached:
            del schemas[name]
