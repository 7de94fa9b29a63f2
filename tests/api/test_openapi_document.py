"""Our served OpenAPI document against the contract, without Java (the contract test generates).

The expectations come from the contract files, not from api/openapi.py's tables: operations,
parameters and responses are read out of ChatApi.md, the schema facts are MODELS.md's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_spec_validator import validate

from datamonkey_chat.api.app import create_app
from datamonkey_chat.catalog import load_upstream_methods
from datamonkey_chat.settings import Settings
from tests.contract.contract_docs import (
    DocumentedOperation,
    contract_file,
    parse_chat_api,
    snake_case,
)

Json = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UPSTREAM_SPEC = contract_file().parent / "datamonkey-api-1.2.0.yaml"
# Answers that are not records: HyPhy's own JSON, downloaded as it is.
RAW_JSON = frozenset({"downloadJobResult"})


@pytest.fixture
async def document(tmp_path: Path) -> AsyncIterator[Json]:
    """The document as the server serves it at /api/v1/openapi.json."""
    settings = Settings(_env_file=None, data_dir=tmp_path, hyphy_binary=None)  # type: ignore[call-arg]
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/api/v1/openapi.json")
            assert response.status_code == 200
            yield response.json()


@pytest.fixture(scope="module")
def contract() -> dict[str, DocumentedOperation]:
    return parse_chat_api(contract_file().read_text())


def operations(document: Json) -> dict[str, tuple[str, str, Json]]:
    found: dict[str, tuple[str, str, Json]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                assert operation["operationId"] not in found, "operationIds must be unique"
                found[operation["operationId"]] = (method.upper(), path, operation)
    return found


def test_is_a_valid_openapi_30_document(document: Json) -> None:
    assert document["openapi"].startswith("3.0.")
    validate(document)


def test_title_server_and_no_security(document: Json) -> None:
    assert document["info"]["title"] == "Datamonkey API"
    assert document["servers"][0]["url"] == "http://datamonkey.org/api/v1"
    assert "securitySchemes" not in document.get("components", {})
    assert "security" not in document
    for _method, _path, operation in operations(document).values():
        assert "security" not in operation


def test_contract_operations_are_exactly_the_chat_tag(
    document: Json, contract: dict[str, DocumentedOperation]
) -> None:
    ours = operations(document)
    expected = {op.operation_id for op in contract.values()}
    tagged_chat = {op_id for op_id, (_, _, op) in ours.items() if "Chat" in op.get("tags", [])}
    assert tagged_chat == expected, "the Chat tag holds the contract's operations, nothing else"
    for op_id in expected:
        assert ours[op_id][2]["tags"] == ["Chat"]
    extensions = set(ours) - expected
    assert extensions, "rename and health are extensions beside the contract"
    for op_id in extensions:
        assert ours[op_id][2].get("tags"), f"{op_id} needs a tag (else it lands in DefaultApi)"


def test_operations_match_chat_api_md(
    document: Json, contract: dict[str, DocumentedOperation]
) -> None:
    ours = operations(document)
    for documented in contract.values():
        method, path, operation = ours[documented.operation_id]
        assert (method, path) == (documented.method, documented.path)
        assert operation["summary"] == documented.summary
        assert "description" not in operation  # it would be printed under the summary

        body_params = [p for p in documented.parameters if p.name.endswith("_request")]
        plain = [p for p in documented.parameters if p not in body_params]
        parameters = operation.get("parameters", [])
        assert [snake_case(p["name"]) for p in parameters] == [p.name for p in plain]
        for ours_p, doc_p in zip(parameters, plain, strict=True):
            assert ours_p["description"] == doc_p.description
            assert ours_p.get("required", False) is not doc_p.optional, ours_p["name"]
            assert ours_p["schema"] == {"type": "string"}

        body = operation.get("requestBody")
        if body_params:
            (doc_body,) = body_params
            assert body is not None, documented.operation_id
            schema = body["content"]["application/json"]["schema"]
            model = doc_body.type.split("**")[1]
            assert schema == {"$ref": f"#/components/schemas/{model}"}
            assert snake_case(model) == doc_body.name
            assert body.get("required", False) is not doc_body.optional
        else:
            assert body is None

        responses = operation["responses"]
        assert list(responses) == list(documented.responses)
        for status, description in documented.responses.items():
            assert responses[status]["description"] == description
            assert list(responses[status].get("headers", {})) == documented.response_headers[status]


UPSTREAM_METHODS = load_upstream_methods().values()
DATA_CHECKING_OPERATIONS = {"PostDataset", *(m.start_operation for m in UPSTREAM_METHODS)}


def test_422_only_where_data_is_checked(document: Json) -> None:
    # Malformed requests get 400 with a ServerError body; 422 means "your data has these
    # problems", only where data is checked, with the problems listed.
    for op_id, (_, _, operation) in operations(document).items():
        if op_id in DATA_CHECKING_OPERATIONS:
            schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ValidationFailed"}, op_id
        else:
            assert "422" not in operation["responses"], op_id
    assert "HTTPValidationError" not in document["components"]["schemas"]
    failed = document["components"]["schemas"]["ValidationFailed"]
    assert set(failed["required"]) == {"errors", "error", "code", "details", "problems"}


# PostDataset starts a session too, like createConversation; upstream documents the token
# of the single-record reads as optional ("required if private": ours answer 401).
TOKEN_OPTIONAL = (
    "createConversation",
    "PostDataset",
    "getDatasetById",
    "getJobById",
    "getVisualization",
)


def test_user_token_required_everywhere_but_create(document: Json) -> None:
    for op_id, (_, _, operation) in operations(document).items():
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "header" and parameter["name"] == "user_token":
                assert parameter["required"] is (op_id not in TOKEN_OPTIONAL), op_id


def upstream_operations() -> dict[tuple[str, str], Json]:
    """(METHOD, path) -> operation, from the upstream Datamonkey API 1.2.0 document."""
    spec = yaml.safe_load(contract_file(UPSTREAM_SPEC).read_text())
    return {
        (method.upper(), path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def test_upstream_operations_keep_upstream_ids_token_and_pretty_print(document: Json) -> None:
    """Every upstream operation we serve has upstream's operation id, its `user_token`
    (required or not) and its `pretty_print`; Chat operations stay without it (ChatApi.md)."""
    served = {(method, path): op for method, path, op in operations(document).values()}
    upstream = upstream_operations()
    ours = [key for key in upstream if key in served]
    assert ("POST", "/datasets") in ours and ("GET", "/health") in ours
    assert len(ours) >= len([k for k in upstream if not k[1].startswith("/visualizations")])
    for key in ours:
        theirs, mine = upstream[key], served[key]
        assert mine["operationId"] == theirs["operationId"], key
        their_params = {p["name"]: p for p in theirs.get("parameters", [])}
        my_params = {p["name"]: p for p in mine.get("parameters", [])}
        if "pretty_print" in their_params:
            assert my_params["pretty_print"]["in"] == "query", key
            assert my_params["pretty_print"]["schema"] == {"type": "boolean"}, key
        if mine["tags"] == ["Chat"]:
            assert "pretty_print" not in my_params, key
        if "user_token" in their_params and "user_token" in my_params:
            required = their_params["user_token"].get("required", False)
            assert my_params["user_token"]["required"] is required, key


def test_upstream_records_have_real_schemas(document: Json) -> None:
    """Routes answer with prebuilt JSON (fast), yet the document shows upstream's records."""
    ours = operations(document)
    schemas = document["components"]["schemas"]
    expected = {
        ("PostDataset", "201"): "Datasets",
        ("getDatasetsList", "200"): "Datasets",
        ("getDatasetById", "200"): "Dataset",
        ("getJobsList", "200"): "GetJobsList200Response",
        ("getJobById", "200"): "JobStatus",
        ("getMethodsList", "200"): "MethodsList",
        ("getHealth", "200"): "Health",
        ("getHealth", "503"): "Health",
    }
    for (op_id, status), name in expected.items():
        content = ours[op_id][2]["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": f"#/components/schemas/{name}"}, op_id
        assert schemas[name]["properties"], name
    dataset = schemas["Dataset"]["properties"]
    for name in ("id", "name", "description", "type", "created", "updated", "content"):
        assert name in dataset, name
    assert dataset["created"] == {"type": "string", "format": "date-time", **dataset["created"]}
    assert dataset["id"]["pattern"] == "^[a-zA-Z0-9]+$"
    assert {"kind", "data_type", "sequences", "problems"} <= set(dataset)  # ours, additive
    assert schemas["Datasets"]["properties"]["datasets"]["items"] == {
        "$ref": "#/components/schemas/Dataset"
    }
    details = schemas["Health"]["properties"]["details"]
    details_schema = schemas[details["$ref"].rsplit("/", 1)[1]]["properties"]
    for name in ("database", "job_scheduler", "llm", "datamonkey"):
        assert details_schema[name]["enum"] == ["healthy", "unhealthy", "unknown"], name
    job = schemas["JobStatus"]["properties"]
    assert job["status"]["enum"] == ["queued", "running", "completed", "error"]
    # every 2xx JSON answer of an upstream operation documents a schema, never `{}`
    for op_id, (_, path, operation) in ours.items():
        if path.startswith(("/datasets", "/jobs/{jobId}", "/health", "/methods")):
            for status, response in operation["responses"].items():
                media = response.get("content", {}).get("application/json")
                if status.startswith("2") and media is not None and op_id not in RAW_JSON:
                    assert media.get("schema"), (op_id, status)


def test_response_schemas_and_names(document: Json) -> None:
    ours = operations(document)
    expected = {
        ("createConversation", "201"): "ChatConversation",
        ("createConversation", "500"): "ServerError",
        ("listUserConversations", "200"): "ListUserConversations200Response",
        ("getConversation", "200"): "ChatConversation",
        ("getConversationMessages", "200"): "GetConversationMessages200Response",
        ("sendConversationMessage", "200"): "SendConversationMessage200Response",
    }
    errors = {"401": "UnauthorizedError", "403": "ForbiddenError", "404": "NotFoundError"}
    for op_id, (_, _, operation) in ours.items():
        if op_id not in {o for o, _ in expected} | {"deleteConversation"}:
            continue
        for status, response in operation["responses"].items():
            name = expected.get((op_id, status)) or errors.get(status)
            if name is None:
                assert status == "204" and "content" not in response
                continue
            assert response["content"] == {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
            }, (op_id, status)
    header = ours["createConversation"][2]["responses"]["201"]["headers"]["X-Session-Token"]
    assert header["schema"] == {"type": "string"}


def test_models_md_schema_facts(document: Json) -> None:
    schemas = document["components"]["schemas"]

    message = schemas["ChatMessage"]
    assert set(message["required"]) >= {"role", "content"}
    assert message["properties"]["role"]["type"] == "string"
    assert message["properties"]["role"]["enum"] == ["user", "assistant"]
    assert message["properties"]["content"]["type"] == "string"
    assert message["properties"]["timestamp"] == {
        **message["properties"]["timestamp"],
        "type": "integer",
        "format": "int64",
    }
    assert not message["properties"]["timestamp"].get("nullable")

    conversation = schemas["ChatConversation"]
    assert set(conversation["required"]) >= {"id", "created", "updated"}
    assert conversation["properties"]["id"]["type"] == "string"
    assert conversation["properties"]["title"]["type"] == "string"
    for name in ("created", "updated"):
        assert conversation["properties"][name]["type"] == "integer"
        assert conversation["properties"][name]["format"] == "int64"
    messages = conversation["properties"]["messages"]
    assert messages["type"] == "array"
    assert messages["items"] == {"$ref": "#/components/schemas/ChatMessage"}

    for name, fields in {
        "UnauthorizedError": {"code": "integer", "message": "string"},
        "ForbiddenError": {"code": "integer", "message": "string"},
        "NotFoundError": {"error": "string", "status": "integer"},
        "ServerError": {"error": "string", "code": "string", "details": "string"},
    }.items():
        schema = schemas[name]
        for field_name, field_type in fields.items():
            assert schema["properties"][field_name]["type"] == field_type, (name, field_name)
        if name == "ServerError":
            assert not schema.get("required")
        else:
            assert set(schema["required"]) == set(fields), name

    for name in ("CreateConversationRequest", "SendConversationMessageRequest"):
        assert schemas[name]["type"] == "object"
    assert schemas["SendConversationMessageRequest"]["required"] == ["message"]
    assert schemas["SendConversationMessageRequest"]["properties"]["message"]["type"] == "string"


def test_no_openapi_31_leftovers(document: Json) -> None:
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "null" or isinstance(node.get("type"), list):
                pytest.fail(f"3.1 type at {where}: {node}")
            assert "const" not in node and "examples" not in node.get("schema", {}), where
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    walk(document, "#")


def test_session_end_and_rate_limits_are_documented_beside_the_contract(document: Json) -> None:
    ours = operations(document)
    method, path, end = ours["endSession"]
    assert (method, path) == ("DELETE", "/session")
    assert end["tags"] == ["Sessions"] and set(end["responses"]) == {"204", "401"}
    for op_id in ("PostDataset", "startFELJob", "startSlatkinJob"):
        limited = ours[op_id][2]["responses"]["429"]
        assert limited["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        schema = limited["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ServerError"}
    contract_operations = [op for _, _, op in ours.values() if op["tags"] == ["Chat"]]
    assert len(contract_operations) == 6
    for operation in contract_operations:  # their 429 is in README: ChatApi.md must not change
        assert "429" not in operation["responses"], operation["operationId"]


def test_paging_is_documented_beside_the_contracts_operations(document: Json) -> None:
    # The paging parameters must not enter the operations' `parameters` (the generated
    # client, and so ChatApi.md, would change); they are described beside them.
    ours = operations(document)
    schemas = document["components"]["schemas"]
    for op_id, extra, response in (
        ("listUserConversations", [], "ListUserConversations200Response"),
        ("getConversationMessages", ["tool_payloads"], "GetConversationMessages200Response"),
    ):
        operation = ours[op_id][2]
        assert "query" not in {p["in"] for p in operation["parameters"]}
        documented = operation["x-extension-parameters"]
        assert [p["name"] for p in documented] == ["limit", "cursor", *extra]
        assert all(p["in"] == "query" and not p["required"] for p in documented)
        limit = documented[0]["schema"]
        assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 200)
        bad = operation["x-extension-responses"]["400"]["content"]["application/json"]
        assert bad["schema"] == {"$ref": "#/components/schemas/ServerError"}
        next_cursor = schemas[response]["properties"]["next_cursor"]
        assert next_cursor["type"] == "string" and next_cursor["nullable"] is True
        assert "next_cursor" not in schemas[response].get("required", [])
    message_id = schemas["ChatMessage"]["properties"]["id"]
    assert message_id["type"] == "integer"
    assert "id" not in schemas["ChatMessage"]["required"]


def test_a_tree_only_method_needs_no_alignment_in_its_request(document: Json) -> None:
    """Upstream's SlatkinRequest has only `tree`: ours does not require `alignment` there;
    methods that read an alignment still require it."""
    schemas = document["components"]["schemas"]
    upstream = yaml.safe_load(UPSTREAM_SPEC.read_text())["components"]["schemas"]
    assert "alignment" not in upstream["SlatkinRequest"]["properties"]
    assert "alignment" not in schemas["SlatkinRequest"].get("required", [])
    assert "tree" in schemas["SlatkinRequest"]["properties"]
    assert "alignment" in schemas["FelRequest"]["required"]
