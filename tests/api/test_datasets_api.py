"""Datasets and the job endpoints' input checks, on SQLite and PostgreSQL, without HyPhy runs.

Every job request here is refused before anything is queued (or HyPhy is configured away),
so no HyPhy process starts; tests/integration/test_analyses_hyphy.py runs the real thing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from datamonkey_chat.api.app import create_app
from datamonkey_chat.settings import Settings
from tests.conftest import open_client

# 4 sequences x 4 codons; names match TREE.
FASTA = ">human\nATGAAACCCGGG\n>chimp\nATGAAACCCGGA\n>mouse\nATGAAGCCCGGG\n>rat\nATGAAGCCTGGG\n"
TREE = "((human,chimp),(mouse,rat));\n"
NEXUS = """#NEXUS
BEGIN DATA;
  DIMENSIONS NTAX=4 NCHAR=12;
  FORMAT DATATYPE=DNA MISSING=? GAP=-;
  MATRIX
    human ATGAAACCCGGG
    chimp ATGAAACCCGGA
    mouse ATGAAGCCCGGG
    rat   ATGAAGCCTGGG
  ;
END;
BEGIN TREES;
  TREE tree1 = ((human,chimp),(mouse,rat));
END;
"""
PHYLIP = "4 12\nhuman ATGAAACCCGGG\nchimp ATGAAACCCGGA\nmouse ATGAAGCCCGGG\nrat   ATGAAGCCTGGG\n"
STOP_CODON = FASTA.replace("chimp\nATGAAACCCGGA", "chimp\nATGTAACCCGGA")  # codon 2
UNEQUAL = FASTA.replace("rat\nATGAAGCCTGGG", "rat\nATGAAGCCT")
PROTEIN = ">a\nMKVLWEQRSTPD\n>b\nMKVLWEQRSTPE\n>c\nMKVIWEQRSTPD\n>d\nMRVLWEQKSTPD\n"


def upload_files(text: str, filename: str = "data.fas", meta: str | None = None) -> dict[str, Any]:
    files = {"file": (filename, text.encode(), "text/plain")}
    return {"files": files, "data": {"meta": meta} if meta is not None else {}}


async def upload(
    client: httpx.AsyncClient, text: str, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"user_token": token} if token else {}
    return await client.post("/datasets", headers=headers, **upload_files(text, **kwargs))


async def new_session(client: httpx.AsyncClient) -> str:
    response = await client.post("/chat", json={})
    token: str = response.headers["X-Session-Token"]
    return token


@pytest.fixture
async def token(client: httpx.AsyncClient) -> str:
    return await new_session(client)


@pytest.fixture
def make_client(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """A client on an app built with overridden settings."""

    def make(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        return open_client(create_app(make_settings(**overrides)))

    return make


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    ("text", "filename", "fmt", "has_tree"),
    [
        (FASTA, "a.fas", "fasta", False),
        (NEXUS, "a.nex", "nexus", True),
        (PHYLIP, "a.phy", "phylip", False),
    ],
)
async def test_upload_alignment_formats(
    client: httpx.AsyncClient, token: str, text: str, filename: str, fmt: str, has_tree: bool
) -> None:
    response = await upload(client, text, token, filename=filename)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].isalnum()
    assert (body["name"], body["kind"], body["type"], body["format"]) == (
        filename,
        "alignment",
        "nucleotide",
        fmt,
    )
    assert (body["sequences"], body["sites"], body["codons"]) == (4, 12, 4)
    assert body["has_tree"] is has_tree and body["codon_ready"] is True
    assert isinstance(body["created"], int) and body["problems"] == []
    assert "X-Session-Token" not in response.headers  # a valid token keeps its session


async def test_upload_tree_with_meta(client: httpx.AsyncClient, token: str) -> None:
    meta = '{"name": "primates", "description": "a guide tree", "type": "tree"}'
    response = await upload(client, TREE, token, filename="t.nwk", meta=meta)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["description"], body["kind"], body["type"]) == (
        "primates",
        "a guide tree",
        "tree",
        "tree",
    )
    assert body["sequences"] == 4


async def test_upload_without_token_starts_a_session(client: httpx.AsyncClient) -> None:
    response = await upload(client, FASTA)
    assert response.status_code == 201, response.text
    token = response.headers["X-Session-Token"]
    assert "X-Session-Token" in response.headers["Access-Control-Expose-Headers"]
    listed = await client.get("/datasets", headers={"user_token": token})
    assert [d["id"] for d in listed.json()["datasets"]] == [response.json()["id"]]
    # the new session works for chat too
    assert (await client.get("/chat", headers={"user_token": token})).status_code == 200


async def test_upload_with_invalid_token_starts_a_new_session(client: httpx.AsyncClient) -> None:
    response = await upload(client, FASTA, "not-a-token")
    assert response.status_code == 201
    assert response.headers["X-Session-Token"] != "not-a-token"


async def test_bearer_token_is_accepted(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(
        "/datasets", headers={"Authorization": f"Bearer {token}"}, **upload_files(FASTA)
    )
    assert response.status_code == 201 and "X-Session-Token" not in response.headers


# ---------------------------------------------------------------- precise 422s


async def test_unequal_lengths_are_422_naming_sequence_and_position(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await upload(client, UNEQUAL, token)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    [problem] = [p for p in body["problems"] if p["code"] == "unequal_length"]
    assert problem["sequence"] == "rat" and problem["position"] == 10
    assert "rat" in problem["message"] and "9 sites" in problem["message"]
    assert "rat" in body["details"]
    # nothing was stored
    assert (await client.get("/datasets", headers={"user_token": token})).json()["datasets"] == []


async def test_garbage_is_422(client: httpx.AsyncClient, token: str) -> None:
    response = await upload(client, "hello, this is not an alignment\n", token)
    assert response.status_code == 422
    assert [p["code"] for p in response.json()["problems"]] == ["unrecognized_format"]


async def test_binary_file_is_422(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(
        "/datasets",
        headers={"user_token": token},
        files={"file": ("x.bin", b"\x89PNG\x00\x01\x02", "application/octet-stream")},
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["code"] == "not_text"


async def test_invalid_upload_without_token_starts_no_session(client: httpx.AsyncClient) -> None:
    response = await upload(client, UNEQUAL)
    assert response.status_code == 422 and "X-Session-Token" not in response.headers


async def test_bad_meta_is_400(client: httpx.AsyncClient, token: str) -> None:
    response = await upload(client, FASTA, token, meta="{not json")
    assert response.status_code == 400 and "meta" in response.json()["details"]
    response = await upload(client, FASTA, token, meta='{"type": "spreadsheet"}')
    assert response.status_code == 400 and "spreadsheet" in response.json()["details"]


async def test_stop_codon_is_a_warning_at_upload_and_422_for_fel(
    client: httpx.AsyncClient, token: str
) -> None:
    uploaded = await upload(client, STOP_CODON, token)
    assert uploaded.status_code == 201
    warning = uploaded.json()["problems"][0]
    assert (warning["code"], warning["severity"], warning["sequence"]) == (
        "stop_codon",
        "warning",
        "chimp",
    )
    tree = (await upload(client, TREE, token, filename="t.nwk")).json()
    started = await client.post(
        "/methods/fel-start",
        headers={"user_token": token},
        json={"alignment": uploaded.json()["id"], "tree": tree["id"]},
    )
    assert started.status_code == 422, started.text
    [problem] = started.json()["problems"]
    assert (problem["code"], problem["sequence"], problem["codon"], problem["position"]) == (
        "stop_codon",
        "chimp",
        2,
        4,
    )
    assert problem["message"].startswith("FEL needs codon data")
    assert (await client.get("/jobs", headers={"user_token": token})).json()["jobs"] == []


async def test_protein_to_fel_is_422(client: httpx.AsyncClient, token: str) -> None:
    protein = (await upload(client, PROTEIN, token)).json()
    assert protein["type"] == "protein"
    started = await client.post(
        "/methods/fel-start", headers={"user_token": token}, json={"alignment": protein["id"]}
    )
    assert started.status_code == 422
    codes = [p["code"] for p in started.json()["problems"]]
    assert codes[0] == "wrong_data_type"
    assert (
        "FEL needs a nucleotide alignment of codons, but this is a protein alignment"
        in (started.json()["details"])
    )


async def test_mismatched_tree_is_422(client: httpx.AsyncClient, token: str) -> None:
    alignment = (await upload(client, FASTA, token)).json()
    tree = (await upload(client, "((human,chimp),(mouse,dog));", token, filename="t.nwk")).json()
    started = await client.post(
        "/methods/fel-start",
        headers={"user_token": token},
        json={"alignment": alignment["id"], "tree": tree["id"]},
    )
    assert started.status_code == 422
    messages = {p["code"]: p["message"] for p in started.json()["problems"]}
    assert "dog" in messages["tree_extra_tips"] and "rat" in messages["tree_missing_tips"]


async def test_a_missing_tree_is_no_problem(make_client: Callable[..., Any]) -> None:
    """Without a tree a neighbour-joining tree is built for the job, as datamonkey.org does:
    the only thing stopping this start is that this server has no HyPhy."""
    async for client in make_client(hyphy_binary="/nonexistent/hyphy"):
        token = await new_session(client)
        alignment = (await upload(client, FASTA, token)).json()
        started = await client.post(
            "/methods/fel-start", headers={"user_token": token}, json={"alignment": alignment["id"]}
        )
        assert started.status_code == 503, started.json()
        assert "HyPhy is not installed" in started.json()["details"]


async def test_unknown_method_and_bad_options(client: httpx.AsyncClient, token: str) -> None:
    alignment = (await upload(client, NEXUS, token)).json()
    headers = {"user_token": token}
    unknown = await client.post("/methods/nosuch-start", headers=headers, json={"alignment": "x"})
    assert unknown.status_code == 404 and "nosuch" in unknown.json()["error"]
    not_runnable = await client.post(
        "/methods/nrm-start", headers=headers, json={"alignment": alignment["id"]}
    )
    assert not_runnable.status_code == 422  # upstream's InvalidDataError: which field, why
    assert not_runnable.json()["errors"][0]["field"] == "method"
    bad_option = await client.post(
        "/methods/fel-start", headers=headers, json={"alignment": alignment["id"], "colour": 1}
    )
    assert bad_option.status_code == 422
    assert [p["field"] for p in bad_option.json()["problems"]] == ["colour"]
    bad_value = await client.post(
        "/methods/fel-start", headers=headers, json={"alignment": alignment["id"], "srv": "maybe"}
    )
    assert bad_value.status_code == 422 and "'Yes' or 'No'" in bad_value.json()["details"]
    out_of_range = await client.post(
        "/methods/fel-start", headers=headers, json={"alignment": alignment["id"], "pvalue": 5}
    )
    assert out_of_range.status_code == 422
    assert out_of_range.json()["problems"][0]["field"] == "pvalue"
    tree_as_alignment = await client.post(
        "/methods/fel-start",
        headers=headers,
        json={"alignment": (await upload(client, TREE, token, filename="t.nwk")).json()["id"]},
    )
    assert tree_as_alignment.status_code == 400
    assert "is a tree" in tree_as_alignment.json()["details"]


async def test_too_large_is_413(make_client: Callable[..., Any]) -> None:
    async for client in make_client(max_upload_bytes=40):
        response = await upload(client, FASTA)
        assert response.status_code == 413
        assert response.json()["code"] == "too_large" and "40 bytes" in response.json()["details"]


# ---------------------------------------------------------------- reading and ownership


async def test_list_get_include_content_delete(client: httpx.AsyncClient, token: str) -> None:
    headers = {"user_token": token}
    first = (await upload(client, FASTA, token, filename="first.fas")).json()
    second = (await upload(client, NEXUS, token, filename="second.nex")).json()
    listed = (await client.get("/datasets", headers=headers)).json()["datasets"]
    assert {d["id"] for d in listed} == {first["id"], second["id"]}
    assert all("content" not in d for d in listed)

    got = await client.get(f"/datasets/{second['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == second
    full = await client.get(
        f"/datasets/{second['id']}", headers=headers, params={"include_content": "true"}
    )
    assert full.json()["content"] == NEXUS

    deleted = await client.delete(f"/datasets/{first['id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/datasets/{first['id']}", headers=headers)).status_code == 404
    listed = (await client.get("/datasets", headers=headers)).json()["datasets"]
    assert [d["id"] for d in listed] == [second["id"]]


async def test_ownership_401_403_404(client: httpx.AsyncClient, token: str) -> None:
    mine = (await upload(client, FASTA, token)).json()
    other = {"user_token": await new_session(client)}

    assert (await client.get("/datasets")).status_code == 401
    assert (await client.get("/datasets", headers={"user_token": "forged"})).status_code == 401
    assert (await client.get(f"/datasets/{mine['id']}")).json() == {
        "code": 401,
        "message": "Missing user token",
    }

    forbidden = await client.get(f"/datasets/{mine['id']}", headers=other)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"code": 403, "message": "User does not own this dataset"}
    assert (await client.delete(f"/datasets/{mine['id']}", headers=other)).status_code == 403
    started = await client.post("/methods/fel-start", headers=other, json={"alignment": mine["id"]})
    assert started.status_code == 403
    assert (await client.get("/datasets", headers=other)).json()["datasets"] == []

    missing = await client.get("/datasets/abc123", headers=other)
    assert missing.status_code == 404
    assert missing.json() == {"error": "Dataset abc123 not found", "status": 404}
    # the owner still has it
    assert (await client.get(f"/datasets/{mine['id']}", headers={"user_token": token})).is_success


async def test_job_endpoints_without_jobs(client: httpx.AsyncClient, token: str) -> None:
    headers = {"user_token": token}
    assert (await client.get("/jobs", headers=headers)).json() == {"jobs": []}
    assert (await client.get("/jobs")).status_code == 401
    assert (await client.get("/jobs/nope", headers=headers)).status_code == 404
    assert (await client.delete("/jobs/nope", headers=headers)).status_code == 404
    result = await client.get("/methods/fel-result", headers=headers, params={"job_id": "nope"})
    assert result.status_code == 404
    bad_filter = await client.get("/jobs", headers=headers, params={"method": "nosuch"})
    assert bad_filter.status_code == 404


async def test_methods_list_parameters(client: httpx.AsyncClient) -> None:
    response = await client.get("/methods")
    assert response.status_code == 200
    methods = {m["id"]: m for m in response.json()["methods"]}
    assert {"fel", "fubar", "absrel", "meme", "busted", "relax", "gard"} <= set(methods)
    fel_options = {o["name"]: o for o in methods["fel"]["options"]}
    assert fel_options["pvalue"]["default"] == 0.1 and fel_options["pvalue"]["type"] == "number"
    assert methods["nrm"]["runnable"] is False


async def test_without_hyphy_health_is_unhealthy_and_jobs_say_why(
    make_client: Callable[..., Any],
) -> None:
    async for client in make_client(hyphy_binary="/nonexistent/hyphy"):
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["details"]["job_scheduler"] == "unhealthy"
        token = await new_session(client)
        alignment = (await upload(client, NEXUS, token)).json()  # uploads still work
        started = await client.post(
            "/methods/fubar-start",
            headers={"user_token": token},
            json={"alignment": alignment["id"]},
        )
        assert started.status_code == 503
        assert "apt-get install hyphy-pt" in started.json()["details"]


async def test_a_nexus_alignment_serves_as_its_own_tree(make_client: Callable[..., Any]) -> None:
    """`tree` may name a NEXUS alignment that carries a tree; one without a tree is refused."""
    async for client in make_client(hyphy_binary="/nonexistent/hyphy"):
        token = await new_session(client)
        headers = {"user_token": token}
        nexus = (await upload(client, NEXUS, token, filename="a.nex")).json()
        fasta = (await upload(client, FASTA, token)).json()
        own = await client.post(
            "/methods/fel-start",
            headers=headers,
            json={"alignment": nexus["id"], "tree": nexus["id"]},
        )
        assert own.status_code == 503, own.json()  # accepted; only HyPhy is missing here
        treeless = await client.post(
            "/methods/fel-start",
            headers=headers,
            json={"alignment": fasta["id"], "tree": fasta["id"]},
        )
        assert treeless.status_code == 400
        assert "without a tree of its own" in treeless.json()["details"]


async def test_is_my_job_done_follows_unfinished_jobs_first(
    client: httpx.AsyncClient, app: Any, token: str
) -> None:
    """With no job named, the newest running job is reported, then a queued one, then the
    latest finished one — never a newer finished job while an older one still runs."""
    import jwt

    from datamonkey_chat.storage import repository
    from datamonkey_chat.storage.models import JobRow

    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    analyses, database = app.state.analyses, app.state.database

    async def add(job_id: str, status: str, created: int) -> None:
        row = JobRow(
            id=job_id, user_id=user_id, method="fel", alignment_id="a", tree_id=None,
            options="{}", status=status, progress=0.0, attempts=0, created_ms=created,
        )  # fmt: skip
        async with database.transaction() as db:
            await repository.add_job(db, row)

    await add("jdone1", "completed", 1)
    assert (await analyses.get_job(user_id, None))["job_id"] == "jdone1"
    await add("jqueued", "queued", 2)
    await add("jrunning", "running", 3)
    await add("jdone2", "completed", 4)
    assert (await analyses.get_job(user_id, None))["job_id"] == "jrunning"
    async with database.transaction() as db:
        await repository.delete_job(db, "jrunning")
    assert (await analyses.get_job(user_id, None))["job_id"] == "jqueued"
    async with database.transaction() as db:
        await repository.delete_job(db, "jqueued")
    assert (await analyses.get_job(user_id, None))["job_id"] == "jdone2"
