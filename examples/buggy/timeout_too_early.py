"""Buggy pool: waits by counting polls, and int() rounds the count down.

WHAT IS WRONG: a waiter turns its timeout into ``int(timeout / POLL)`` waits of POLL
seconds. int() truncates, so it gives up early: 0.12 s becomes two polls (0.1 s) and
anything under 0.05 s becomes no wait at all. (An early wake-up, by a notify another caller
then beats it to, also uses up a whole poll.)
HOW IT SHOWS: block=True, pool full: get_conn(timeout=0.03) raises EmptyPoolError at
once, get_conn(timeout=0.12) after about 0.1 s.
HOW TO FIX IT: measure time, don't count waits: compute a deadline with time.monotonic()
and wait for ``deadline - time.monotonic()`` until it is <= 0.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "timeout"

POLL = 0.05  # seconds between two looks at the pool while waiting


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
        polls = None if timeout is None else int(timeout / POLL)  # BUG: rounds down
        with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError("the pool is closed")
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    self._live += 1  # reserve a slot, then connect outside the lock
                    break
                if polls is not None:
                    if polls <= 0:
                        raise EmptyPoolError(f"no connection became free within {timeout} s")
                    polls -= 1
                self._cond.wait(POLL)
        try:
            return self._factory()
        except BaseException:
            self.put_conn(None)  # the connect failed: give the slot back
            raise

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
