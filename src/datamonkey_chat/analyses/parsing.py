"""Uploads are parsed in a few worker processes of their own, bounded in time and memory.

Parsing runs Biopython over whatever a stranger uploaded. Here it runs in a small pool of
worker processes (pebble's ProcessPool), away from the server's threads and memory:

* a parse still running after `parse_time_limit_seconds` is killed, and its worker replaced;
* a worker's address space is capped at `parse_memory_limit_bytes` (RLIMIT_AS), so a parse
  that needs more fails with MemoryError there, not in the server;
* each client (address) has at most `parse_per_client` parses running or waiting; more get
  429 at once, so one client cannot hold every worker and others' uploads keep moving.

A client that disconnects cancels its parse (the worker is stopped if it had started).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing import forkserver
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessFuture, ProcessPool

from datamonkey_chat.domain.errors import RateLimitedError
from datamonkey_chat.settings import Settings

T = TypeVar("T")

# Workers start from a fork server that has already imported the parsers (and Biopython),
# so a replacement after a kill takes milliseconds; never a fork of the threaded server.
PRELOAD = ["datamonkey_chat.analyses.validation"]
TASKS_PER_WORKER = 20  # then the worker is replaced, returning whatever memory it kept
RETRY_AFTER_SECONDS = 2


class ParseLimitError(Exception):
    """A parse was stopped at a limit; `message` says which, for the 422 problem."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ParserBusyError(RateLimitedError, ValueError):
    """This client already has its share of parses in flight."""


def _start_fork_server() -> BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()  # once per server process; at once when already running
    return context


def _limit_memory(limit_bytes: int) -> None:
    """Worker initializer: cap the address space, so allocation fails before the machine's."""
    if limit_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


class ParsePool:
    def __init__(
        self, workers: int, time_limit_seconds: float, memory_limit_bytes: int, per_client: int
    ) -> None:
        self.workers = max(1, workers)
        self.time_limit_seconds = time_limit_seconds
        self.memory_limit_bytes = memory_limit_bytes
        self.per_client = max(1, per_client)
        self._pool: ProcessPool | None = None  # started on first use
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Settings) -> ParsePool:
        return cls(
            workers=settings.parse_workers,
            time_limit_seconds=settings.parse_time_limit_seconds,
            memory_limit_bytes=settings.parse_memory_limit_bytes,
            per_client=settings.parse_per_client,
        )

    def warm_up(self) -> None:
        """Start the fork server in the background (it imports the parsers and Biopython,
        seconds on a busy machine), so that the first upload does not wait for it."""
        threading.Thread(target=_start_fork_server, name="parse-warm-up", daemon=True).start()

    def _schedule(self, fn: Callable[..., T], args: tuple[Any, ...]) -> ProcessFuture[T]:
        """Called in a thread: starting the pool forks its workers, and waits for the fork
        server if it is still starting; never on the event loop."""
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPool(
                    max_workers=self.workers,
                    max_tasks=TASKS_PER_WORKER,
                    initializer=_limit_memory,
                    initargs=(self.memory_limit_bytes,),
                    context=_start_fork_server(),
                )
            return self._pool.schedule(fn, args=args, timeout=self.time_limit_seconds)

    @contextmanager
    def reserve(self, client: str | None) -> Iterator[None]:
        if client is None:  # the server's own calls (e.g. an alignment pasted in a message)
            yield
            return
        if self._in_flight[client] >= self.per_client:
            raise ParserBusyError(
                f"You already have {self._in_flight[client]} upload(s) being checked; "
                "send the next one when they are done",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self._in_flight[client] += 1
        try:
            yield
        finally:
            self._in_flight[client] -= 1
            if not self._in_flight[client]:
                del self._in_flight[client]

    def in_flight(self, client: str) -> int:
        return self._in_flight[client]

    async def run(self, fn: Callable[..., T], *args: Any, client: str | None = None) -> T:
        """`fn(*args)` in a worker (both picklable); ParseLimitError at a limit."""
        with self.reserve(client):
            future = await asyncio.to_thread(self._schedule, fn, args)
            try:
                result: T = await asyncio.wrap_future(future)
            except TimeoutError:
                raise ParseLimitError(
                    "parse_time_limit",
                    f"Reading this file took longer than the server's limit of "
                    f"{self.time_limit_seconds:g} seconds, so it was stopped",
                ) from None
            except MemoryError:
                raise ParseLimitError(
                    "parse_memory_limit",
                    "Reading this file needed more memory than the server allows "
                    f"({self.memory_limit_bytes // 2**20} MiB), so it was stopped",
                ) from None
            except ProcessExpired as exc:  # killed from outside, e.g. by the kernel
                raise ParseLimitError(
                    "parse_failed",
                    f"The process reading this file stopped (exit code {exc.exitcode})",
                ) from None
            return result

    def close(self) -> None:
        """Stop the workers (running parses are killed); the pool restarts if used again."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)
