"""Session fixtures of the contract test: a live server and the client generated from it."""

from __future__ import annotations

import importlib
import sys
import urllib.request
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.contract.contract_docs import CONTRACT_DIR, contract_file
from tests.contract.generated_client import (
    GeneratedClient,
    generate,
    generator_command,
    install,
)
from tests.live_server import API_PREFIX, live_server  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def generator() -> list[str]:
    return generator_command()  # skips (fails in CI) without Java or the generator


@pytest.fixture(scope="session")
def api_url(live_server: str) -> str:  # noqa: F811
    return live_server + API_PREFIX


@pytest.fixture(scope="session")
def generated_client(
    generator: list[str], api_url: str, tmp_path_factory: pytest.TempPathFactory
) -> GeneratedClient:
    """Generated once per session, from the document the running server serves."""
    workdir = tmp_path_factory.mktemp("contract")
    spec = workdir / "openapi.json"
    with urllib.request.urlopen(f"{api_url}/openapi.json", timeout=30) as response:
        spec.write_bytes(response.read())
    source = generate(spec, workdir / "client")
    site = install(source, workdir / "site")
    return GeneratedClient(spec, source, site, workdir)


@pytest.fixture(scope="session")
def openapi_client(generated_client: GeneratedClient) -> Iterator[ModuleType]:
    """The installed `openapi_client` package, imported into this process."""
    sys.path.insert(0, str(generated_client.site))
    try:
        yield importlib.import_module("openapi_client")
    finally:
        sys.path.remove(str(generated_client.site))


UPSTREAM_DOCUMENT = CONTRACT_DIR / "datamonkey-api-1.2.0.yaml"
UPSTREAM_PACKAGE = "datamonkey_upstream"  # never meets the Chat contract's `openapi_client`


@pytest.fixture(scope="session")
def upstream(
    generator: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The asyncio client generated from upstream's document, imported into this process."""
    workdir = tmp_path_factory.mktemp("upstream")
    source = generate(
        contract_file(UPSTREAM_DOCUMENT), workdir / "client", package=UPSTREAM_PACKAGE
    )
    site = install(source, workdir / "site")
    sys.path.insert(0, str(site))
    try:
        yield importlib.import_module(UPSTREAM_PACKAGE)
    finally:
        sys.path.remove(str(site))
