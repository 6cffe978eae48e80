"""Buggy asyncio pool: close() does not wake the tasks already waiting in get_conn.

WHAT IS WRONG: close() sets the flag and closes the idle connections but never wakes the
sleeping waiters, so a get_conn asleep on its future learns about the close only when its
own timeout runs out, or when a later put_conn happens to wake it.
HOW IT SHOWS: only under concurrency: block=True, pool full, task B waits in
get_conn(timeout=None); close() returns, yet B keeps waiting (for ever, if nobody returns a
connection); with a timeout it raises ClosedPoolError only when the timeout runs out.
HOW TO FIX IT: in close(), resolve every sleeper's future (each wakes, re-checks and raises
ClosedPoolError).
The thread catalogue's ``close_wakes_nobody.py`` is the same bug (SQLAlchemy #2522).
"""

from __future__ import annotations

import asyncio
import http.client
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

EXPECTED_INVARIANT = "closed"


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
            self.put_conn(None)
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

    def put_conn(self, conn: Any) -> None:
        keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
        if keep:
            self._idle.append(conn)
        else:
            self._live -= 1
        self._wake_one()  # a connection or a slot is free
        if conn is not None and not keep:
            conn.close()

    def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        self._live -= len(idle)  # BUG: the sleepers are not woken
        for conn in idle:
            conn.close()


def _wake(fut: asyncio.Future[None]) -> bool:
    """Wake a sleeper, unless it is awake already (woken, timed out or cancelled)."""
    if fut.done():
        return False
    fut.set_result(None)
    return True
