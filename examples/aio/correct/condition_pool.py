"""Correct asyncio pool: one ``asyncio.Condition`` and a LIFO list of idle connections.

DESIGN: the thread catalogue's Condition design on asyncio: a count of live connections
(plus slots reserved by callers connecting) and a list of idle ones, changed only under
the condition's lock. get_conn re-checks in a loop and waits in ``Condition.wait()``, under
``asyncio.wait_for`` when it has a timeout. ``notify()`` needs the lock held, and taking an
asyncio lock is a coroutine, so put_conn and close() are coroutine functions too (unlike
``poolcheck.pool.AsyncPool``, whose waiters are futures that a plain function can resolve).
WHY IT IS CORRECT:
- bound, capacity: the slot is reserved in the same locked step as the check, and given
  back when the connect fails in any way, a cancellation too (``except BaseException``).
- wakeup, closed: every path that frees a connection or a slot notifies one waiter; close()
  notifies all, and each re-checks and raises ClosedPoolError.
- timeout: the deadline is fixed once; a wait that times out re-checks before it gives up,
  so a connection that arrived just then is still taken.
- interrupt-safe: a waiter cancelled in ``Condition.wait()`` may be the one a notify()
  reached, and ``asyncio.Condition`` passes that on only since Python 3.13 (gh-112202): so
  it notifies another waiter before re-raising (a spurious wake-up is harmless: waiters
  re-check). The lock is never held while its holder is suspended, so taking it never
  suspends: no cancellation can come between a failed connect and the slot's return.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

EXPECTED_INVARIANT = None


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or not timeout >= 0):
        raise ValueError(f"timeout must be a number >= 0 or None, not {timeout!r}")


class Pool:
    """At most ``maxsize`` idle connections; with ``block=True`` at most ``maxsize`` in all."""

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
        self._cond = asyncio.Condition()  # binds to the running loop when first used
        self._idle: list[Any] = []  # newest last
        self._live = 0  # connections in existence, plus slots reserved by callers connecting
        self._closed = False

    async def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        async with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError("the pool is closed")
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    self._live += 1  # reserve the slot; connect outside the lock
                    break
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    raise EmptyPoolError(f"no connection became free within {timeout} s")
                try:
                    await asyncio.wait_for(self._cond.wait(), remaining)
                except asyncio.TimeoutError:
                    pass  # the loop re-checks, then gives up
                except BaseException:  # cancelled: a notify() may have reached us; pass it on
                    self._cond.notify()
                    raise
        try:
            return await self._factory()
        except BaseException:  # a failed connect, or a cancellation: the slot goes back
            await self.put_conn(None)
            raise

    async def put_conn(self, conn: Any) -> None:
        async with self._cond:
            keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
            else:
                self._live -= 1
            self._cond.notify()  # a connection or a slot is free
        if conn is not None and not keep:
            _close_quietly(conn)

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.close()
