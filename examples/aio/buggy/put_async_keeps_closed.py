"""Buggy asyncio pool: a connection returned while close() runs stays open.

WHAT IS WRONG: put_conn (a coroutine, as is close()) reads ``_closed``, then yields to let
other tasks run (``await asyncio.sleep(0)``), then decides from what it read. If close()
runs during that await, put_conn still keeps the connection idle in the closed pool, where
nobody will ever close it.
HOW IT SHOWS: only under concurrency: a task returns its connection and, while its
put_conn is suspended, another task closes the pool: the connection ends open, idle in a
closed pool. The return began before close(), so it may come first; then close() should
have closed it: ``no-leak``. Called one at a time (each awaited to the end), the pool is
correct.
HOW TO FIX IT: read ``_closed`` after the await, in the same step that stores the
connection (better: do not await between a check and the act that depends on it).
The thread catalogue's ``close_races_put.py`` is the same bug (psycopg_pool #784).
"""

from __future__ import annotations

import asyncio
import http.client
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

EXPECTED_INVARIANT = "no-leak"


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """A LIFO list of idle connections, a count of live ones, and a FIFO of sleepers."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Awaitable[Any]] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout

        async def connect() -> Any:
            return http.client.HTTPConnection(host, port)  # connects on its first request

        self._factory = connection_factory or connect
        self._idle: list[Any] = []
        self._live = 0  # connections in existence, plus slots reserved by callers connecting
        self._sleepers: deque[asyncio.Future[None]] = deque()  # oldest first
        self._closed = False

    async def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            if self._idle:
                return self._idle.pop()
            if not self.block or self._live < self.maxsize:
                self._live += 1  # reserve a slot, then connect
                break
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise EmptyPoolError(f"no connection became free within {timeout} s")
            await self._sleep(remaining)
        try:
            return await self._factory()
        except BaseException:  # a failed connect, or a cancellation: give the slot back
            self._live -= 1
            self._wake_one()
            raise

    async def _sleep(self, timeout: float | None) -> None:
        """Sleep until put_conn or close() wakes us, or the timeout runs out."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._sleepers.append(fut)
        timer = None if timeout is None else loop.call_later(timeout, _wake, fut)
        try:
            await fut
        except BaseException:  # cancelled: a wake-up that reached us goes to the next sleeper
            if fut.done() and not fut.cancelled():
                self._wake_one()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            if fut in self._sleepers:
                self._sleepers.remove(fut)

    def _wake_one(self) -> None:
        while self._sleepers:
            if _wake(self._sleepers.popleft()):
                return

    async def put_conn(self, conn: Any) -> None:
        closed = self._closed  # BUG: read before the await below, where close() may run
        try:
            await asyncio.sleep(0)  # be fair: let the tasks already woken run first
        finally:  # even if cancelled at the await, the connection is put away
            keep = conn is not None and not closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
            else:
                self._live -= 1
            self._wake_one()  # a connection or a slot is free
            if conn is not None and not keep:
                conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        self._live -= len(idle)
        while self._sleepers:
            _wake(self._sleepers.popleft())
        for conn in idle:
            conn.close()


def _wake(fut: asyncio.Future[None]) -> bool:
    """Wake a sleeper, unless it is awake already (woken, timed out or cancelled)."""
    if fut.done():
        return False
    fut.set_result(None)
    return True
