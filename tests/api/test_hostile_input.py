"""Hostile input is refused cheaply and harms no one else.

Files whose headers lie and trees nested 10,000 deep run on SQLite and PostgreSQL (the
`client` fixture); the body limits are HTTP-level and run over real HTTP (uvicorn in this
process, raw sockets so a request can claim 10 GB and send 2 bytes), on SQLite only: the
database plays no part in them.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from datamonkey_chat.api.app import create_app
from datamonkey_chat.settings import Settings
from tests.api.test_datasets_api import FASTA, the_dataset, upload
from tests.conftest import serve_in_process

HOSTILE_FILES = {
    "phylip-million-taxa": "1000000 4\na ACGT\n",
    "phylip-billion-squared": "999999999 999999999\na ACGT\n",
    "nexus-nchar": "#NEXUS\nbegin data; dimensions ntax=2 nchar=999999999; format datatype=dna;"
    "\nmatrix\na ACGT\nb ACGT\n;\nend;\n",
    "nexus-ntax": "#NEXUS\nbegin data; dimensions ntax=99999999 nchar=4; format datatype=dna;"
    "\nmatrix\na ACGT\nb ACGT\n;\nend;\n",
}


def deep_tree(depth: int = 10_000) -> str:
    return "(" * depth + "a,b" + ")" * depth + ";"


DEEP_NEXUS = (
    "#NEXUS\nbegin data; dimensions ntax=2 nchar=3; format datatype=dna;\n"
    f"matrix\na ATG\nb ATA\n;\nend;\nbegin trees; tree t = {deep_tree()}\nend;\n"
)


def problem_codes(response: httpx.Response) -> list[str]:
    return [p["code"] for p in response.json()["problems"]]


# ---------------------------------------------------------------- lying files, deep trees


@pytest.mark.parametrize("name", list(HOSTILE_FILES))
async def test_sizes_a_header_cannot_back_are_422(client: httpx.AsyncClient, name: str) -> None:
    response = await upload(client, HOSTILE_FILES[name], filename=f"{name}.txt")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_failed" and "announces" in body["details"]
    assert problem_codes(response) == ["declared_size_mismatch"]
    assert "X-Session-Token" not in response.headers  # refused before any session


@pytest.mark.parametrize(
    ("text", "meta"),
    [(deep_tree(), '{"type": "tree"}'), (DEEP_NEXUS, None), (DEEP_NEXUS, '{"type": "tree"}')],
    ids=["newick", "nexus-alignment", "nexus-tree"],
)
async def test_a_tree_10000_levels_deep_is_422(
    client: httpx.AsyncClient, text: str, meta: str | None
) -> None:
    response = await upload(client, text, filename="deep.txt", meta=meta)
    assert response.status_code == 422, response.text
    assert problem_codes(response) == ["tree_too_deep"]
    assert "10000 levels deep" in response.json()["details"]


# ---------------------------------------------------------------- parse limits


@asynccontextmanager
async def clients_at(app: FastAPI, *addresses: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One client per address, all on one running app."""
    async with app.router.lifespan_context(app), AsyncExitStack() as stack:
        clients = []
        for address in addresses:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://testserver/api/v1")
            clients.append(await stack.enter_async_context(client))
        yield clients


DEEP_JSON = b'{"alignment": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"  # past json's recursion


@pytest.mark.parametrize(
    ("path", "code"),
    [("/methods/fel-start", "invalid_request"), ("/visualizations", "invalid_data")],
)
async def test_json_nested_past_the_parsers_recursion_is_400(
    client: httpx.AsyncClient, path: str, code: str
) -> None:
    token = (await client.post("/chat", json={})).headers["X-Session-Token"]
    headers = {"user_token": token, "content-type": "application/json"}
    response = await client.post(path, content=DEEP_JSON, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert "not valid JSON" in response.json()["details"]


async def test_upload_meta_nested_past_the_parsers_recursion_is_400(
    client: httpx.AsyncClient,
) -> None:
    response = await upload(client, FASTA, meta=DEEP_JSON.decode())
    assert response.status_code == 400, response.text
    assert "meta must be a JSON object string" in response.json()["details"]


def big_fasta(sequences: int = 30, sites: int = 99_999) -> str:
    return "".join(f">s{i}\n" + "ACG" * (sites // 3) + "\n" for i in range(sequences))


async def test_a_slow_parse_is_stopped_at_its_limit(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(parse_time_limit_seconds=0.01))
    async with clients_at(app, "10.0.0.1") as (client,):
        # 15 MB: a third of a second of parsing, well past the limit and past the pool's
        # timeout check (which runs every 0.1 s)
        response = await upload(client, big_fasta(sequences=150))
        assert response.status_code == 422, response.text
        assert problem_codes(response) == ["parse_time_limit"]
        assert "limit of 0.01 seconds" in response.json()["details"]


async def test_one_client_flooding_uploads_does_not_stop_others(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(parse_per_client=1))
    async with clients_at(app, "10.0.0.1", "10.0.0.2") as (flooder, other):
        parsing = app.state.analyses._parsing
        with parsing.reserve("10.0.0.1"):  # the flooder's first upload is still being parsed
            refused = await asyncio.gather(*(upload(flooder, FASTA) for _ in range(5)))
            served = await upload(other, FASTA)
        for response in refused:
            assert response.status_code == 429, response.text
            assert response.json()["code"] == "rate_limited"
            assert set(response.json()) == {"error", "code", "details"}
            assert int(response.headers["Retry-After"]) > 0
        assert served.status_code == 201, served.text
        token = served.headers["X-Session-Token"]
        listed = await other.get("/datasets", headers={"user_token": token})
        assert [d["id"] for d in listed.json()["datasets"]] == [the_dataset(served)["id"]]
        assert (await upload(flooder, FASTA)).status_code == 201  # its turn came back


# ---------------------------------------------------------------- body limits over real HTTP


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chat.sqlite3'}",
        hyphy_binary=None,
        max_upload_bytes=1024 * 1024,
    )


@pytest.fixture
async def base_url(sqlite_settings: Settings) -> AsyncIterator[str]:
    async with serve_in_process(create_app(sqlite_settings)) as url:
        yield url


async def session(base_url: str) -> tuple[str, str]:
    """A new session's token and a conversation of it."""
    async with httpx.AsyncClient() as http:
        created = await http.post(f"{base_url}/chat", json={})
    return created.headers["X-Session-Token"], created.json()["id"]


async def raw_request(
    base_url: str, head: str, chunks: list[bytes], chunked: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """Send a request by hand; returns the answer's status, headers and body.

    Reads the answer while still sending, and stops sending once it has come.
    """
    url = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    answer = asyncio.create_task(read_answer(reader))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        for chunk in chunks:
            if answer.done():
                break
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
    except ConnectionError:
        pass  # closed by the server after its answer
    status, headers, body = await asyncio.wait_for(answer, timeout=30)
    writer.close()
    return status, headers, body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:] if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return int(head[0].split()[1]), headers, body


def post_head(path: str, length: int | None, token: str = "", content_type: str = "") -> str:
    lines = [f"POST /api/v1{path} HTTP/1.1", "Host: 127.0.0.1"]
    lines.append(f"Content-Type: {content_type or 'application/json'}")
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    if token:
        lines.append(f"user_token: {token}")
    return "\n".join(lines) + "\n"


def assert_too_large(status: int, headers: dict[str, str], body: bytes) -> None:
    assert status == 413, body
    error = json.loads(body)
    assert set(error) == {"error", "code", "details"} and error["code"] == "too_large"
    assert "over the limit of" in error["details"]
    assert headers["connection"] == "close"


@pytest.mark.parametrize(
    "path", ["/chat/{id}/messages", "/datasets", "/chat", "/methods/fel-start"]
)
async def test_a_content_length_over_the_limit_is_refused_before_reading(
    base_url: str, path: str
) -> None:
    token, conversation_id = await session(base_url)
    head = post_head(path.format(id=conversation_id), 10 * 1024**3, token)  # claims 10 GB
    status, headers, body = await raw_request(base_url, head, [b"{}"])
    assert_too_large(status, headers, body)


async def test_a_client_waiting_for_100_continue_gets_413_instead(base_url: str) -> None:
    token, _ = await session(base_url)
    head = post_head("/datasets", 300 * 1024**2, token) + "Expect: 100-continue\n"
    status, headers, body = await raw_request(base_url, head, [])  # sends no body at all
    assert_too_large(status, headers, body)


@pytest.mark.parametrize("path", ["/chat/{id}/messages", "/chat"])
async def test_a_chunked_body_is_cut_off_past_the_limit(base_url: str, path: str) -> None:
    token, conversation_id = await session(base_url)
    head = post_head(path.format(id=conversation_id), None, token)
    # 10 MiB and no final chunk: an answer can only come from cutting the body off.
    chunks = [b'{"message": "'] + [b"A" * 65536] * 160
    status, headers, body = await raw_request(base_url, head, chunks, chunked=True)
    assert_too_large(status, headers, body)


async def test_an_oversize_upload_leaves_no_file_behind(
    base_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"  # where the multipart parser's spooled files go
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    token, _ = await session(base_url)
    boundary = "hostile"
    head = post_head("/datasets", None, token, f"multipart/form-data; boundary={boundary}")
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.fas"\r\n'
    part += "Content-Type: text/plain\r\n\r\n>a\n"
    chunks = [part.encode()] + [b"ACGT" * 16384] * 64  # 4 MiB against 1 MiB, no final chunk
    status, headers, body = await raw_request(base_url, head, chunks, chunked=True)
    assert_too_large(status, headers, body)
    async with httpx.AsyncClient() as http:
        listed = await http.get(f"{base_url}/datasets", headers={"user_token": token})
    assert listed.json()["datasets"] == []
    assert list(spool.iterdir()) == []
    assert not [f for f in open_files() if str(spool) in f]  # spooled files closed, not leaked


def open_files() -> list[str]:
    """What this process's file descriptors point at (those closing meanwhile left out)."""
    paths = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass
    return paths


async def test_bodies_within_the_limits_still_pass(base_url: str) -> None:
    token, conversation_id = await session(base_url)
    async with httpx.AsyncClient() as http:
        headers = {"user_token": token}
        sent = await http.post(
            f"{base_url}/chat/{conversation_id}/messages",
            json={"message": "\x01" * 32768},  # 6 bytes each in JSON: the limit allows it
            headers=headers,
        )
        assert sent.status_code == 200, sent.text
        files = {"file": ("a.fas", FASTA.encode(), "text/plain")}
        uploaded = await http.post(f"{base_url}/datasets", files=files, headers=headers)
        assert uploaded.status_code == 201, uploaded.text
