"""The parse pool's limits with real worker processes: time, memory, per-client share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from datamonkey_chat.analyses.parsing import ParseLimitError, ParsePool, ParserBusyError
from datamonkey_chat.analyses.validation import validate_alignment

FASTA = ">a\nATGAAACCC\n>b\nATGAAACCG\n"


@pytest.fixture
async def pool() -> AsyncIterator[ParsePool]:
    pool = ParsePool(workers=2, time_limit_seconds=60, memory_limit_bytes=1024**3, per_client=1)
    try:
        yield pool
    finally:
        pool.close()


async def test_parses_in_a_worker(pool: ParsePool) -> None:
    report = await pool.run(validate_alignment, FASTA, "Universal", client="10.0.0.1")
    assert report.ok and report.names == ["a", "b"]
    assert pool.in_flight("10.0.0.1") == 0  # the slot is given back


async def test_a_slow_parse_is_killed_at_its_limit_and_the_worker_replaced() -> None:
    pool = ParsePool(workers=1, time_limit_seconds=0.5, memory_limit_bytes=0, per_client=1)
    try:
        with pytest.raises(ParseLimitError) as raised:
            await pool.run(time.sleep, 3600)
        assert raised.value.code == "parse_time_limit" and "0.5 seconds" in raised.value.message
        # The only worker was killed; a new one serves the next parse.
        assert (await pool.run(validate_alignment, FASTA)).ok
    finally:
        pool.close()


async def test_a_parse_over_the_memory_limit_fails_in_its_worker(pool: ParsePool) -> None:
    with pytest.raises(ParseLimitError) as raised:
        await pool.run(bytearray, 4 * 1024**3)  # 4 GiB against a 1 GiB address space
    assert raised.value.code == "parse_memory_limit" and "1024 MiB" in raised.value.message
    assert (await pool.run(validate_alignment, FASTA)).ok


async def test_one_client_cannot_hold_every_worker(pool: ParsePool) -> None:
    flooder = "10.0.0.1"
    running = asyncio.create_task(pool.run(time.sleep, 3600, client=flooder))
    while pool.in_flight(flooder) == 0:
        await asyncio.sleep(0.01)
    for _ in range(5):  # the flood: refused at once, nothing queued
        with pytest.raises(ParserBusyError) as raised:
            await pool.run(time.sleep, 3600, client=flooder)
        assert raised.value.retry_after > 0
    # Another client's parse runs on the other worker while the flooder's still runs.
    report = await pool.run(validate_alignment, FASTA, client="10.0.0.2")
    assert report.ok and not running.done()
    running.cancel()  # a client that goes away stops its parse (the worker is stopped)
    with pytest.raises(asyncio.CancelledError):
        await running
    assert pool.in_flight(flooder) == 0
    assert (await pool.run(validate_alignment, FASTA, client=flooder)).ok
