"""Buggy pool: room is checked under the lock, but the slot is counted only after connecting.

WHAT IS WRONG: check-then-act. get_conn sees ``_live < maxsize``, lets go of the lock,
connects, and only then increments ``_live``. Every caller that arrives while a connect is
in progress passes the same check.
HOW IT SHOWS: only under concurrency: with block=True, maxsize=2 and 8 threads, more than
2 connections are open at once. Run one call at a time, it behaves correctly.
HOW TO FIX IT: reserve the slot (``_live += 1``) in the same locked block as the check,
and give it back if the connect fails.
Mirrors SQLAlchemy's QueuePool (2007): the overflow counter was checked and incremented
without a lock, so threads exceeded max_overflow.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "bound"


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """A Condition, a LIFO list of idle connections and a count of live ones."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory: Callable[[], Any] = connection_factory or (
            lambda: http.client.HTTPConnection(host, port))
        self._cond = threading.Condition()
        self._idle: list[Any] = []
        self._live = 0  # connections in existence, plus slots reserved by callers connecting
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError("the pool is closed")
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    break  # there is room: connect outside the lock, count it afterwards
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise EmptyPoolError(f"no connection became free within {timeout} s")
                self._cond.wait(remaining)
        conn = self._factory()  # BUG: other callers pass the room check meanwhile
        with self._cond:
            self._live += 1
        return conn

    def put_conn(self, conn: Any) -> None:
        with self._cond:
            keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
            else:
                self._live -= 1  # its slot is free again
            self._cond.notify()
        if conn is not None and not keep:
            conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()
