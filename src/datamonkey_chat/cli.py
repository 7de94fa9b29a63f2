"""`datamonkey-chat serve`: run the API with uvicorn."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

import uvicorn

from datamonkey_chat.logs import configure_logging
from datamonkey_chat.settings import get_settings


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
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings.log_level)
    signal.signal(signal.SIGTERM, exit_through_python)
    uvicorn.run(
        "datamonkey_chat.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        # h11 keeps header names as written; httptools lower-cases them, and the generated
        # client reads X-Session-Token from a case-sensitive dict.
        http="h11",
        # uvloop (uvicorn's "auto" pick) accepts one new connection per loop iteration
        # while busy: under load a new client waits behind every request in flight, once
        # per connection before it. asyncio's loop accepts all waiting connections at once.
        loop="asyncio",
        access_log=False,  # our middleware logs one line per request, without tokens
        log_config=None,  # uvicorn's records go to the root logger's queue like ours
    )


if __name__ == "__main__":
    main()
