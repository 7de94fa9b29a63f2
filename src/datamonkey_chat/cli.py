"""`datamonkey-chat serve`: run the API with uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from datamonkey_chat.logs import configure_logging
from datamonkey_chat.settings import Settings, get_settings

WORKER_START_SECONDS = 60
WORKERS_NEED_POSTGRES = (
    "serve --workers {n}: several processes need PostgreSQL "
    "(DATAMONKEY_CHAT_DATABASE_URL=postgresql+asyncpg://user@host:5432/db). A SQLite "
    "database serves one process: its read cache would miss the others' writes, and its "
    "one writer at a time would be shared by all. Run without --workers, or use PostgreSQL."
)


def exit_through_python(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM handler: leave through Python's exit, so queued log lines are written.

    uvicorn shuts down gracefully on SIGTERM and then raises the signal again under the
    handler that was there before it started. With the default handler that kills the
    process at once, losing the last lines still in the log queue.
    """
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="datamonkey-chat")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (PostgreSQL only)",
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers > 1:
        check_workers_allowed(settings, args.workers)
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, exit_through_python)
    uvicorn.run(
        "datamonkey_chat.cli:worker_app"
        if args.workers > 1
        else "datamonkey_chat.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers if args.workers > 1 else None,
        # a worker's start (imports, migrations, the job runner) takes seconds on a busy
        # machine; uvicorn's default of 5 s kills and restarts workers that are only slow
        timeout_worker_healthcheck=WORKER_START_SECONDS,
        # h11 keeps header names as written; httptools lower-cases them, and the generated
        # client reads X-Session-Token from a case-sensitive dict. (Nagle off: see the class.)
        http=NoDelayH11Protocol,
        # uvloop (uvicorn's "auto" pick) accepts one new connection per loop iteration
        # while busy: under load a new client waits behind every request in flight, once
        # per connection before it. asyncio's loop accepts all waiting connections at once.
        loop="asyncio",
        access_log=False,  # our middleware logs one line per request, without tokens
        log_config=None,  # uvicorn's records go to the root logger's queue like ours
    )


class NoDelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with Nagle's algorithm off on every connection.

    One process gets it from asyncio (its listening socket comes from getaddrinfo, proto
    TCP). With `--workers`, uvicorn binds the socket itself with proto 0, and asyncio then
    leaves Nagle on: a keep-alive client's next request waited ~40 ms for a delayed ACK.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def check_workers_allowed(settings: Settings, workers: int) -> None:
    """Refuse several processes on SQLite; make the shared secret before they race for it."""
    if settings.resolved_database_url.startswith("sqlite"):
        print(WORKERS_NEED_POSTGRES.format(n=workers), file=sys.stderr)
        raise SystemExit(2)
    from datamonkey_chat.domain.sessions import load_or_create_secret

    load_or_create_secret(settings.jwt_secret, settings.data_dir)


def worker_app() -> FastAPI:
    """The app in one of `--workers` processes (spawned: it sets up its own logging)."""
    from datamonkey_chat.api.app import create_app

    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


if __name__ == "__main__":
    main()
