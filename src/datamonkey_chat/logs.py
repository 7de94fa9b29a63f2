"""Logging that never blocks the event loop: records go through a queue to a writer thread."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from logging.handlers import QueueHandler
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# How long the writer lets a burst of records gather before writing them in one go.
BATCH_WINDOW_S = 0.05


class EnqueueRecord(QueueHandler):
    """Queues the record itself: the writer thread formats it, not the event loop.

    (QueueHandler's default formats and copies every record first, for queues that cross
    processes; this queue stays in the process.)
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class BatchWriter:
    """One thread that writes queued records to a stream, a burst per write.

    Waking per record and writing (and flushing) per line costs a thread switch and a
    system call for every request under load, and every switch takes the GIL from the
    event loop. Gathering for BATCH_WINDOW_S makes that a few times per second.
    """

    _STOP = object()

    def __init__(self, records: queue.SimpleQueue[object], stream: TextIO) -> None:
        self._records = records
        self._stream = stream
        self._formatter = logging.Formatter(FORMAT)
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._records.put(self._STOP)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            batch = [self._records.get()]
            time.sleep(BATCH_WINDOW_S)
            while True:
                try:
                    batch.append(self._records.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if isinstance(r, logging.LogRecord)]
            if records:
                self._write(records)
            if any(r is self._STOP for r in batch):
                return

    def _write(self, records: list[logging.LogRecord]) -> None:
        lines = []
        for record in records:
            try:
                lines.append(self._formatter.format(record))
            except Exception:  # a bad record must not stop the log; say which one failed
                lines.append(f"unformattable log record from {record.name} ({record.msg!r})")
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing left to tell
            pass


def configure_logging(level: str, stream: TextIO | None = None) -> BatchWriter:
    """Route every record (ours and uvicorn's) through a queue to one writer thread.

    Writing a line per request straight to stderr or a file stalls the whole server
    whenever the write blocks (a slow pipe, the kernel throttling dirty pages).
    """
    # Fields our format never shows: skip looking them up for every record (logging HOWTO,
    # "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # no file/line lookup per record: the format shows neither
    records: queue.SimpleQueue[object] = queue.SimpleQueue()
    writer = BatchWriter(records, stream or sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [EnqueueRecord(records)]  # type: ignore[arg-type]
    root.setLevel(level.upper())
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # start-up noise
    writer.start()
    atexit.register(writer.stop)
    return writer
