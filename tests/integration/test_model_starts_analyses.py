"""A language model fills a method's options: through the real service over HTTP, with the
scripted OpenAI-compatible server (another process) calling start_analysis with exactly the
arguments the test gives it.

- Options reach the service unchanged and are checked by the method's options model: a bad
  value comes back to the model as a readable error naming the field, and nothing is queued.
- Good options pass that check: without HyPhy the start is refused only afterwards, for want
  of HyPhy (the 503 of the REST API); with HyPhy (marker `hyphy`) the job is queued with those
  options and FEL's summary applies the p-value the model chose.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from Bio import AlignIO

from datamonkey_chat.analyses.hyphy import find_hyphy_binary
from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.service import HYPHY_MISSING
from datamonkey_chat.api.app import create_app
from datamonkey_chat.settings import Settings
from tests.conftest import serve_in_process
from tests.integration.conftest import FakeOpenAIServer

INTEGRASE = Path("/usr/share/hyphy/data/integrase_BDA.nex")
# 4 sequences x 5 codons: enough for the service to validate the input
SMALL = ">a\nATGAAACCCGGGTTT\n>b\nATGAAACCTGGGTTT\n>c\nATGAAGCCCGGATTT\n>d\nATGAAGCCAGGATTC\n"
GOOD = {"pvalue": 0.05, "genetic_code": "Vertebrate mtDNA", "branches": ["Internal"]}
# HIV's integrase has AGA/AGG codons (stops in vertebrate mitochondria); yeast mtDNA keeps
# only TAA/TAG as stops, so the real run uses it
FOR_HYPHY = {"pvalue": 0.05, "genetic_code": "Yeast mtDNA", "branches": ["Internal"]}
JOB_TIMEOUT_SECONDS = 120.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:  # the subject is the model's tool call, not the DB
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}"


Api = tuple[httpx.AsyncClient, dict[str, str], str, str]


async def open_api(settings: Settings, alignment: str) -> AsyncIterator[Api]:
    """(client, headers, conversation id, alignment id) on a server with the scripted model."""
    async with serve_in_process(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            files = {"file": ("small.fasta", alignment.encode(), "text/plain")}
            uploaded = await client.post("/datasets", files=files)
            assert uploaded.status_code == 201, uploaded.text
            headers = {"user_token": uploaded.headers["X-Session-Token"]}
            chat = await client.post("/chat", headers=headers, json={})
            assert chat.status_code in (200, 201), chat.text
            yield client, headers, chat.json()["id"], uploaded.json()["datasets"][0]["id"]


def model_settings(
    make_settings: Callable[..., Settings], server: FakeOpenAIServer, **overrides: Any
) -> Settings:
    return make_settings(
        model="openai:scripted-model",
        openai_base_url=server.base_url,
        reply_timeout_seconds=30,
        **overrides,
    )


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
async def without_hyphy(
    make_settings: Callable[..., Settings], fake_openai_server: FakeOpenAIServer
) -> AsyncIterator[Api]:
    settings = model_settings(make_settings, fake_openai_server, hyphy_binary="/nonexistent/hyphy")
    async for api in open_api(settings, SMALL):
        yield api


async def model_starts(api: Api, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Ask the scripted model to call start_analysis(**arguments): (tool result, reply)."""
    client, headers, chat, _ = api
    response = await client.post(
        f"/chat/{chat}/messages",
        headers=headers,
        json={"message": f"START_JSON {json.dumps(arguments)}"},
    )
    assert response.status_code == 200, response.text
    message = response.json()["message"]
    events = {e["type"]: e for e in message["tool_events"] if e["tool_name"] == "start_analysis"}
    assert events["tool_call"]["payload"] == arguments  # the call reached the tool unchanged
    return events["tool_result"]["payload"], message["content"]


async def jobs(api: Api) -> list[dict[str, Any]]:
    client, headers, _, _ = api
    listed: list[dict[str, Any]] = (await client.get("/jobs", headers=headers)).json()["jobs"]
    return listed


@pytest.mark.parametrize(
    ("options", "fields"),
    [
        ({"pvalue": 5}, ["pvalue"]),
        ({"pvalue": 0.05, "genetic_code": "Klingon"}, ["genetic_code"]),
        ({"posterior": 0.9}, ["posterior"]),  # not an option of FEL
        ({"srv": "maybe", "resample": -1}, ["srv", "resample"]),
    ],
)
async def test_a_bad_option_comes_back_to_the_model_naming_the_field(
    without_hyphy: Api, options: dict[str, Any], fields: list[str]
) -> None:
    alignment = without_hyphy[3]
    result, reply = await model_starts(
        without_hyphy, {"method": "fel", "alignment_id": alignment, "options": options}
    )

    error = result["error"]
    assert error.startswith("FEL options are invalid")
    for name in fields:
        assert f"{name}:" in error
    assert reply == f"The server said: {error}"  # what the model read, it could tell the user
    assert await jobs(without_hyphy) == []


async def test_good_options_pass_validation_and_stop_only_at_hyphy(without_hyphy: Api) -> None:
    alignment = without_hyphy[3]
    arguments = {"method": "FEL", "alignment_id": alignment, "options": GOOD}
    result, reply = await model_starts(without_hyphy, arguments)

    assert result == {"error": HYPHY_MISSING}  # checked after the options and the data
    assert "invalid" not in reply
    assert await jobs(without_hyphy) == []


async def test_an_option_that_does_not_fit_the_data_is_explained(without_hyphy: Api) -> None:
    alignment = without_hyphy[3]
    options = {"branches": ["FOREGROUND"]}  # valid for the model, absent from the tree
    result, _ = await model_starts(
        without_hyphy, {"method": "fel", "alignment_id": alignment, "options": options}
    )
    assert "no branches labelled FOREGROUND" in result["error"]


# ---------------------------------------------------------------- with HyPhy


def codon_subset(sequences: int = 6, codons: int = 30) -> str:
    """A FASTA slice of HyPhy's integrase example (small, so FEL takes seconds)."""
    alignment = AlignIO.read(str(INTEGRASE), "nexus")
    out = io.StringIO()
    for record in alignment[:sequences]:
        out.write(f">{record.id}\n{str(record.seq)[: codons * 3]}\n")
    return out.getvalue()


@pytest.mark.hyphy
@pytest.mark.skipif(
    find_hyphy_binary() is None or not INTEGRASE.exists() or "fel" not in registry(),
    reason="HyPhy (apt-get install hyphy-pt) and its example data are not installed",
)
async def test_the_job_gets_the_options_the_model_chose(
    make_settings: Callable[..., Settings], fake_openai_server: FakeOpenAIServer
) -> None:
    settings = model_settings(make_settings, fake_openai_server, job_poll_seconds=0.2)
    async for api in open_api(settings, codon_subset()):
        client, headers, _, alignment = api
        result, reply = await model_starts(
            api, {"method": "fel", "alignment_id": alignment, "options": FOR_HYPHY}
        )

        assert "error" not in result, result
        stored = registry()["fel"].Options.model_validate(FOR_HYPHY).model_dump(mode="json")
        assert result["status"] == "queued" and result["options"] == stored
        assert result["options"]["genetic_code"] == "Yeast-mtDNA"  # stored in HyPhy's spelling
        assert reply == f"Started job {result['job_id']} with options " + json.dumps(
            stored, sort_keys=True
        )
        job = await finished(client, headers, result["job_id"])
        assert job["status"] == "completed", job
        assert job["options"] == stored
        assert "p <= 0.05" in job["summary"]["summary_text"]


async def finished(
    client: httpx.AsyncClient, headers: dict[str, str], job_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await client.get(f"/jobs/{job_id}", headers=headers)).json()
        if job["status"] in ("completed", "error"):
            return job
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish")
