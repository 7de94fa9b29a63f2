"""Datasets and the job endpoints' input checks, on SQLite and PostgreSQL, without HyPhy runs.

Every job request here is refused before anything is queued (or HyPhy is configured away),
so no HyPhy process starts; tests/integration/test_analyses_hyphy.py runs the real thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
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


def the_dataset(response: httpx.Response) -> dict[str, Any]:
    """The one dataset of an upload's 201: upstream's `Datasets`, `{"datasets": [dataset]}`."""
    assert response.status_code == 201, response.text
    [dataset] = response.json()["datasets"]
    assert isinstance(dataset, dict)
    return dataset


async def stored(
    client: httpx.AsyncClient, text: str, token: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    return the_dataset(await upload(client, text, token, **kwargs))


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
    before = datetime.now(UTC)
    response = await upload(client, text, token, filename=filename)
    after = datetime.now(UTC)
    assert list(response.json()) == ["datasets"]  # upstream's Datasets
    body = the_dataset(response)
    assert re.fullmatch(r"[a-zA-Z][a-zA-Z0-9]*", body["id"]) and len(body["id"]) >= 17
    # no type given: `type` is the detected kind; data type and format beside it
    assert (body["name"], body["type"], body["kind"], body["data_type"], body["format"]) == (
        filename,
        "alignment",
        "alignment",
        "nucleotide",
        fmt,
    )
    assert (body["sequences"], body["sites"], body["codons"]) == (4, 12, 4)
    assert body["has_tree"] is has_tree and body["codon_ready"] is True
    assert body["problems"] == []
    # upstream's date-times: ISO 8601 in UTC, to the millisecond
    created = datetime.fromisoformat(body["created"])
    assert created.utcoffset() == timedelta(0) and body["created"].endswith("Z")
    assert before - timedelta(milliseconds=1) <= created <= after
    assert body["updated"] == body["created"]
    assert "X-Session-Token" not in response.headers  # a valid token keeps its session


async def test_upload_tree_with_meta(client: httpx.AsyncClient, token: str) -> None:
    meta = '{"name": "primates", "description": "a guide tree", "type": "tree"}'
    body = await stored(client, TREE, token, filename="t.nwk", meta=meta)
    assert (body["name"], body["description"], body["kind"], body["type"]) == (
        "primates",
        "a guide tree",
        "tree",
        "tree",
    )
    assert body["sequences"] == 4 and body["data_type"] is None


@pytest.mark.parametrize(
    ("text", "declared", "kind"),
    [
        (FASTA, "fasta", "alignment"),
        (NEXUS, "nexus", "alignment"),
        (FASTA, "alignment", "alignment"),
        (TREE, "newick", "tree"),
        (FASTA, "spreadsheet", "alignment"),  # not a word we know: the content decides
        (TREE, "My Guide Tree (v2) ✓", "tree"),
        (PROTEIN, "  Protein  ", "alignment"),
    ],
)
async def test_meta_type_is_kept_as_given(
    client: httpx.AsyncClient, token: str, text: str, declared: str, kind: str
) -> None:
    """Upstream's `type` is the uploader's: returned unchanged, by the upload and by reads;
    what we detected is `kind`."""
    meta = json.dumps({"type": declared})
    body = await stored(client, text, token, meta=meta)
    assert (body["type"], body["kind"]) == (declared, kind)
    headers = {"user_token": token}
    got = (await client.get(f"/datasets/{body['id']}", headers=headers)).json()
    assert (got["type"], got["kind"]) == (declared, kind)
    listed = (await client.get("/datasets", headers=headers)).json()["datasets"]
    assert [(d["id"], d["type"]) for d in listed] == [(body["id"], declared)]


async def test_a_known_type_still_decides_what_is_parsed(
    client: httpx.AsyncClient, token: str
) -> None:
    """`tree` on an alignment: parsed as a tree, so refused, as before."""
    response = await upload(client, FASTA, token, meta='{"type": "tree"}')
    assert response.status_code == 422


async def test_upload_without_token_starts_a_session(client: httpx.AsyncClient) -> None:
    response = await upload(client, FASTA)
    assert response.status_code == 201, response.text
    token = response.headers["X-Session-Token"]
    assert "X-Session-Token" in response.headers["Access-Control-Expose-Headers"]
    listed = await client.get("/datasets", headers={"user_token": token})
    assert [d["id"] for d in listed.json()["datasets"]] == [the_dataset(response)["id"]]
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
    response = await upload(client, FASTA, token, meta=json.dumps({"type": "x" * 201}))
    assert response.status_code == 400 and "meta.type" in response.json()["details"]


async def test_stop_codon_is_a_warning_at_upload_and_422_for_fel(
    client: httpx.AsyncClient, token: str
) -> None:
    uploaded = await stored(client, STOP_CODON, token)
    warning = uploaded["problems"][0]
    assert (warning["code"], warning["severity"], warning["sequence"]) == (
        "stop_codon",
        "warning",
        "chimp",
    )
    tree = await stored(client, TREE, token, filename="t.nwk")
    started = await client.post(
        "/methods/fel-start",
        headers={"user_token": token},
        json={"alignment": uploaded["id"], "tree": tree["id"]},
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
    protein = await stored(client, PROTEIN, token)
    assert (protein["type"], protein["data_type"]) == ("alignment", "protein")
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
    alignment = await stored(client, FASTA, token)
    tree = await stored(client, "((human,chimp),(mouse,dog));", token, filename="t.nwk")
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
        alignment = await stored(client, FASTA, token)
        started = await client.post(
            "/methods/fel-start", headers={"user_token": token}, json={"alignment": alignment["id"]}
        )
        assert started.status_code == 503, started.json()
        assert "HyPhy is not installed" in started.json()["details"]


SLATKIN_BODY = {
    "groups": 2,
    "compartment_definitions": [
        {"regexp": "^(human|chimp)$", "description": "Primates"},
        {"regexp": "^(mouse|rat)$", "description": "Rodents"},
    ],
    "replicates": 50,
}


async def test_slatkin_runs_on_a_tree_alone(make_client: Callable[..., Any]) -> None:
    """Upstream's SlatkinRequest has only `tree`: a tree dataset (or an alignment with its own
    tree) is enough, and only the missing HyPhy stops these starts; without a tree the 422
    names `tree`, and methods that read an alignment still name `alignment`."""
    async for client in make_client(hyphy_binary="/nonexistent/hyphy"):
        token = await new_session(client)
        headers = {"user_token": token}
        tree = await stored(client, TREE, token, filename="t.nwk")
        nexus = await stored(client, NEXUS, token, filename="a.nex")
        fasta = await stored(client, FASTA, token)
        for tree_id in (tree["id"], nexus["id"]):
            started = await client.post(
                "/methods/slatkin-start", headers=headers, json={**SLATKIN_BODY, "tree": tree_id}
            )
            assert started.status_code == 503, started.json()
            assert "HyPhy is not installed" in started.json()["details"]
        no_match = {**SLATKIN_BODY, "tree": tree["id"]}
        no_match["compartment_definitions"] = [
            {"regexp": "^human$", "description": "Human"},
            {"regexp": "^dog$", "description": "Dog"},
        ]
        refused = await client.post("/methods/slatkin-start", headers=headers, json=no_match)
        assert refused.status_code == 422
        assert [p["code"] for p in refused.json()["problems"]] == [
            "compartment_empty",
            "compartments",
        ]
        assert "t.nwk" in refused.json()["details"]  # the dataset analysed: the tree
        treeless = await client.post(
            "/methods/slatkin-start", headers=headers, json={**SLATKIN_BODY, "tree": fasta["id"]}
        )
        assert treeless.status_code == 400
        assert "without a tree of its own" in treeless.json()["details"]
        nothing = await client.post("/methods/slatkin-start", headers=headers, json=SLATKIN_BODY)
        assert nothing.status_code == 422
        assert [e["field"] for e in nothing.json()["errors"]] == ["tree"]
        for method in ("fel", "fubar", "absrel"):
            fel = await client.post(
                f"/methods/{method}-start", headers=headers, json={"tree": tree["id"]}
            )
            assert fel.status_code == 422, (method, fel.json())
            assert [e["field"] for e in fel.json()["errors"]] == ["alignment"], method
        found = await client.post(
            "/methods/slatkin-result", headers=headers, json={**SLATKIN_BODY, "tree": tree["id"]}
        )
        assert found.status_code == 404  # no job: nothing was queued
        listed = await client.get("/jobs", headers=headers)
        assert listed.status_code == 200 and listed.json()["jobs"] == []


async def test_unknown_method_and_bad_options(client: httpx.AsyncClient, token: str) -> None:
    alignment = await stored(client, NEXUS, token)
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
        json={"alignment": (await stored(client, TREE, token, filename="t.nwk"))["id"]},
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
    first = await stored(client, FASTA, token, filename="first.fas")
    second = await stored(client, NEXUS, token, filename="second.nex")
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
    mine = await stored(client, FASTA, token)
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
        alignment = await stored(client, NEXUS, token)  # uploads still work
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
        nexus = await stored(client, NEXUS, token, filename="a.nex")
        fasta = await stored(client, FASTA, token)
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


# ---------------------------------------------------------------- pretty_print


@pytest.mark.parametrize("value", ["true", "True", "1"])
async def test_pretty_print_indents_the_same_json(
    client: httpx.AsyncClient, token: str, value: str
) -> None:
    headers = {"user_token": token}
    await stored(client, NEXUS, token, meta='{"name": "ünïcode", "type": "nexus"}')
    plain = await client.get("/datasets", headers=headers)
    pretty = await client.get("/datasets", headers=headers, params={"pretty_print": value})
    assert pretty.status_code == plain.status_code == 200
    assert pretty.json() == plain.json()
    assert pretty.text == json.dumps(plain.json(), indent=2, ensure_ascii=False)
    assert "\n" not in plain.text  # without the parameter: compact, as ever
    assert int(pretty.headers["content-length"]) == len(pretty.content)


async def test_pretty_print_everywhere_and_only_when_true(
    client: httpx.AsyncClient, token: str
) -> None:
    headers = {"user_token": token}
    uploaded = await client.post(
        "/datasets", headers=headers, params={"pretty_print": "true"}, **upload_files(FASTA)
    )
    assert uploaded.status_code == 201 and uploaded.text.startswith('{\n  "datasets": [\n')
    for path in ("/health", "/methods", "/jobs", "/chat"):
        compact = await client.get(path, headers=headers, params={"pretty_print": "false"})
        indented = await client.get(path, headers=headers, params={"pretty_print": "true"})
        assert indented.json() == compact.json(), path
        assert "\n" not in compact.text and indented.text.startswith("{\n  "), path
    # errors too; other parameters are read as before
    refused = await client.get("/datasets", params={"pretty_print": "true"})
    assert refused.status_code == 401
    assert refused.text == json.dumps(refused.json(), indent=2)
    filtered = await client.get(
        "/jobs", headers=headers, params={"status": "running", "pretty_print": "yes"}
    )
    assert filtered.text == '{\n  "jobs": []\n}'
    # not the parameter, only a value that mentions it
    other = await client.get("/jobs", headers=headers, params={"method": "pretty_print"})
    assert other.status_code == 404 and "\n" not in other.text


# ---------------------------------------------------------------- health


async def test_health_says_whether_hyphy_analyses_can_run(
    make_client: Callable[..., Any], tmp_path: Any
) -> None:
    """`datamonkey` (upstream's Health_details): healthy while the runner is up with a HyPhy
    binary there; the binary gone, unhealthy. No HyPhy at all: unhealthy."""
    binary = tmp_path / "hyphy"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    async for client in make_client(hyphy_binary=str(binary)):
        details = (await client.get("/health")).json()["details"]
        assert details["datamonkey"] == "healthy" and details["job_scheduler"] == "healthy"
        assert set(details) >= {"database", "job_scheduler", "llm", "datamonkey", "rate_limits"}
        binary.unlink()
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["details"]["datamonkey"] == "unhealthy"
    async for client in make_client(hyphy_binary="/nonexistent/hyphy"):
        assert (await client.get("/health")).json()["details"]["datamonkey"] == "unhealthy"


# ---------------------------------------------------------------- ids


async def test_new_ids_start_with_a_letter_and_old_ids_still_work(
    client: httpx.AsyncClient, app: Any, token: str
) -> None:
    """Conversations and datasets get letter-first alphanumeric ids (upstream's Hash); a
    dataset stored with an old-style hex id (or a url-safe one) is still found by it."""
    import jwt

    from datamonkey_chat.storage import repository

    headers = {"user_token": token}
    letter_first = re.compile(r"[a-zA-Z][a-zA-Z0-9]{17}")
    conversation = (await client.post("/chat", headers=headers, json={})).json()
    assert letter_first.fullmatch(conversation["id"])
    dataset = await stored(client, FASTA, token)
    assert letter_first.fullmatch(dataset["id"])

    user_id = jwt.decode(token, options={"verify_signature": False})["sub"]
    for old_id in ("0123456789abcdef01234567", "Ab-_cd"):
        async with app.state.database.session() as db:
            row = await repository.get_dataset(db, dataset["id"])
        assert row is not None and row.user_id == user_id
        async with app.state.database.transaction() as db:
            await repository.add_dataset(db, copy_row(row, id=old_id))
        got = await client.get(f"/datasets/{old_id}", headers=headers)
        assert got.status_code == 200 and got.json()["id"] == old_id
        assert (await client.delete(f"/datasets/{old_id}", headers=headers)).status_code == 204


def copy_row(row: Any, **changes: Any) -> Any:
    from datamonkey_chat.storage.models import DatasetRow

    columns = {c.key: getattr(row, c.key) for c in DatasetRow.__table__.columns}
    return DatasetRow(**{**columns, **changes})
