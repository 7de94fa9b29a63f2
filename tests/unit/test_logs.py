"""The log writer thread: every record reaches the stream, formatted, in order."""

from __future__ import annotations

import io
import logging
import queue

from datamonkey_chat.logs import BatchWriter, EnqueueRecord


def test_batch_writer_writes_every_record_in_order_and_survives_a_bad_one() -> None:
    records: queue.SimpleQueue[object] = queue.SimpleQueue()
    stream = io.StringIO()
    writer = BatchWriter(records, stream)
    logger = logging.Logger("test.access")  # not registered: nothing else sees these records
    logger.addHandler(EnqueueRecord(records))  # type: ignore[arg-type]
    writer.start()
    for i in range(500):
        logger.info("GET /api/v1/chat %d %.1fms", 200, i / 10)
    logger.info("broken %d", "not a number")  # formatting fails in the writer thread
    logger.warning("after the broken one")
    writer.stop()

    lines = stream.getvalue().splitlines()
    assert len(lines) == 502
    assert [line.split(": ", 1)[1] for line in lines[:3]] == [
        "GET /api/v1/chat 200 0.0ms",
        "GET /api/v1/chat 200 0.1ms",
        "GET /api/v1/chat 200 0.2ms",
    ]
    assert " INFO test.access: GET /api/v1/chat 200 49.9ms" in lines[499]
    assert lines[500].startswith("unformattable log record from test.access")
    assert lines[501].endswith("WARNING test.access: after the broken one")
