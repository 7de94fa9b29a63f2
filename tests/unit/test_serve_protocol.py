"""`serve`'s HTTP protocol turns Nagle's algorithm off on every connection, including on a
listening socket that uvicorn binds itself (`--workers`), where asyncio does not."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from datamonkey_chat.cli import NoDelayH11Protocol


async def nodelay_of_accepted_connection(protocol: type[H11Protocol]) -> int:
    """TCP_NODELAY of the server side of one connection accepted through `protocol`."""

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    config = uvicorn.Config(app=app, http=protocol, lifespan="off")
    config.load()
    state = ServerState()
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Recording(protocol):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    listener = socket.socket(socket.AF_INET)  # as uvicorn's bind_socket makes it: proto 0
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = await asyncio.get_running_loop().create_server(
        lambda: Recording(config, state, {}), sock=listener
    )
    try:
        _reader, writer = await asyncio.open_connection(*listener.getsockname())
        value = await asyncio.wait_for(seen, 5)
        writer.close()
        return value
    finally:
        server.close()
        await server.wait_closed()


async def test_plain_h11_leaves_nagle_on_for_a_socket_uvicorn_bound() -> None:
    assert await nodelay_of_accepted_connection(H11Protocol) == 0  # why the subclass exists


async def test_serves_connections_with_nagle_off() -> None:
    assert await nodelay_of_accepted_connection(NoDelayH11Protocol) != 0
