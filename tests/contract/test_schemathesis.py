"""Schemathesis against the OpenAPI document a live server serves: no 5xx, conforming responses.

Every generated case is sent three ways:

* with a real session token in `user_token` and the generated path parameters (mostly unknown
  conversation ids: 404 bodies);
* with that token and a conversation the session owns, so the 200/204 bodies get checked too
  (a fresh conversation for operations that delete it);
* without a token and with a forged one, where the operation requires a session: 401 bodies.

Bounded and repeatable: derandomized, MAX_EXAMPLES per operation and mode, well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

from tests.contract.contract_docs import CONTRACT_DIR, contract_file

pytestmark = pytest.mark.contract

API = "/api/v1"
TOKEN_HEADER = "user_token"
MAX_EXAMPLES = 25
# createConversation and PostDataset start a session when the token is missing or bad,
# listMethods (the public catalog) and getHealth need none; the rest demand one.
OPEN_OPERATIONS = {"createConversation", "getHealth", "PostDataset", "getMethodsList"}
FORGED_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJzb21lb25lIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjQxMDAwMDAwMDB9."
    "c2lnbmVkLXdpdGgtdGhlLXdyb25nLXNlY3JldA"
)

CONFIG = SchemathesisConfig.from_dict({"generation": {"database": "none"}})


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]


# --- fixtures (the live server is tests/live_server.py's, via tests/contract/conftest.py) ---


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def token(live_server: str, http: requests.Session) -> str:
    response = http.post(f"{live_server}{API}/chat", json={"title": "schemathesis"})
    assert response.status_code == 201, response.text
    return response.headers["X-Session-Token"]


@pytest.fixture(scope="module")
def owned_conversation(live_server: str, http: requests.Session, token: str) -> str:
    """A conversation with one turn in it, which no operation here deletes."""
    headers = {TOKEN_HEADER: token}
    response = http.post(f"{live_server}{API}/chat", json={"title": "kept"}, headers=headers)
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    sent = http.post(
        f"{live_server}{API}/chat/{conversation_id}/messages",
        json={"message": "Hello"},
        headers=headers,
    )
    assert sent.status_code == 200, sent.text
    return conversation_id


@pytest.fixture(scope="module")
def served_schema(live_server: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{live_server}{API}/openapi.json", config=CONFIG)


# --- the test -----------------------------------------------------------------------------


def _with_token(case: Case, value: str | None) -> None:
    for name in list(case.headers or {}):
        if name.lower() in (TOKEN_HEADER, "authorization"):
            del case.headers[name]
    if value is not None:
        case.headers[TOKEN_HEADER] = value


def _validate(case: Case, http: requests.Session, base_url: str) -> requests.Response:
    response = case.call(base_url=base_url, session=http)
    case.validate_response(response, checks=CHECKS)
    return response


def exercise(
    case: Case, base_url: str, http: requests.Session, token: str, owned_conversation: str
) -> None:
    """Send one generated case the three ways described at the top, validating each answer."""
    operation_id = case.operation.definition.raw.get("operationId", "")

    # 1. Authenticated, with whatever path parameters were generated.
    _with_token(case, token)
    _validate(case, http, base_url)

    # 2. Authenticated, on a conversation this session owns.
    if "conversationId" in (case.path_parameters or {}):
        target = owned_conversation
        if case.method.upper() == "DELETE":
            created = http.post(f"{base_url}/chat", json={}, headers={TOKEN_HEADER: token})
            assert created.status_code == 201, created.text
            target = created.json()["id"]
        case.path_parameters["conversationId"] = target
        _validate(case, http, base_url)

    # 3. Unauthenticated: no token, then a forged one.
    if operation_id not in OPEN_OPERATIONS:
        for value in (None, FORGED_TOKEN):
            _with_token(case, value)
            response = _validate(case, http, base_url)
            # 400 only where the body is not even JSON, which is read before the token.
            assert response.status_code in (400, 401), (value, response.text)


def test_served_spec(
    served_schema: BaseSchema,
    live_server: str,
    http: requests.Session,
    token: str,
    owned_conversation: str,
    subtests: pytest.Subtests,
) -> None:
    base_url = f"{live_server}{API}"
    operations = [result.ok() for result in served_schema.get_all_operations()]
    assert len(operations) >= 6, "the served document lacks the contract's operations"
    for operation in operations:
        has_inputs = operation.body or any(True for _ in operation.iter_parameters())
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_inputs else [])
        for mode in modes:
            with subtests.test(operation=operation.label, mode=mode.value):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=MAX_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],  # no shrinking against a server
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: Case) -> None:
                    exercise(case, base_url, http, token, owned_conversation)

                run()


# --- hostile input, as explicit cases through the same checks ---------------------------------

HOSTILE_FILES = {
    "a.phy": "1000000 4\na ACGT\n",
    "b.phy": "999999999 999999999\na ACGT\n",
    "c.nex": "#NEXUS\nbegin data; dimensions ntax=2 nchar=999999999; format datatype=dna;\n"
    "matrix\na ACGT\nb ACGT\n;\nend;\n",
    "d.nwk": "(" * 10_000 + "a,b" + ")" * 10_000 + ";",
    "e.nex": "#NEXUS\nbegin data; dimensions ntax=2 nchar=3; format datatype=dna;\nmatrix\n"
    "a ATG\nb ATA\n;\nend;\nbegin trees; tree t = "
    + "(" * 10_000
    + "a,b"
    + ")" * 10_000
    + ";\nend;\n",
}


def test_hostile_input(
    served_schema: BaseSchema,
    live_server: str,
    http: requests.Session,
    token: str,
    owned_conversation: str,
) -> None:
    """Lying headers, deep trees and an oversize message: 422 and 413, conforming, no 5xx."""
    base_url = f"{live_server}{API}"
    upload = served_schema["/datasets"]["POST"]  # paths are relative to the server URL
    for filename, text in HOSTILE_FILES.items():
        case = upload.Case(body={"file": text.encode()}, media_type="multipart/form-data")
        _with_token(case, token)
        response = _validate(case, http, base_url)
        assert response.status_code == 422, (filename, response.text)
        assert response.json()["problems"][0]["code"] in (
            "declared_size_mismatch",
            "tree_too_deep",
        )
    send = served_schema["/chat/{conversationId}/messages"]["POST"]
    case = send.Case(
        path_parameters={"conversationId": owned_conversation},
        body={"message": "A" * (2 * 1024 * 1024)},  # over the body limit, not just the text's
        media_type="application/json",
    )
    _with_token(case, token)
    response = _validate(case, http, base_url)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert "over the limit" in response.json()["details"]


# --- upstream's whole document, for the operations beside Chat (issue 13) -----------------

UPSTREAM_MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def upstream_schema(live_server: str) -> BaseSchema:
    document = contract_file(CONTRACT_DIR / "datamonkey-api-1.2.0.yaml")
    return schemathesis.openapi.from_path(str(document), config=CONFIG)  # base URL per call


def test_upstream_spec(
    upstream_schema: BaseSchema,
    live_server: str,
    http: requests.Session,
    token: str,
    subtests: pytest.Subtests,
) -> None:
    """Cases generated from upstream's document (not ours) for every non-Chat operation: no
    5xx, and every answer conforms to what upstream's document says of its status."""
    base_url = f"{live_server}{API}"
    operations = [
        operation
        for operation in (result.ok() for result in upstream_schema.get_all_operations())
        if "Chat" not in operation.definition.raw.get("tags", [])
    ]
    assert len(operations) >= 50, "upstream's document lost operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(operation=operation.label, mode=mode.value):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=UPSTREAM_MAX_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def run(case: Case) -> None:
                    _with_token(case, token)
                    _validate(case, http, base_url)

                run()
