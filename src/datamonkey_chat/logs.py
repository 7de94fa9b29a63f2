"""Logging that never blocks the event loop: records go through a queue to a thread."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Route every record (ours and uvicorn's) through a queue to one stderr writer.

    Writing a line per request straight to stderr or a file stalls the whole server
    whenever the write blocks (a slow pipe, the kernel throttling dirty pages).
    """
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter(FORMAT))
    listener = QueueListener(records, writer)
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(records)]
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise
    listener.start()
    atexit.register(listener.stop)
