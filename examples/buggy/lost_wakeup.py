"""Buggy pool: a freed slot wakes nobody.

WHAT IS WRONG: put_conn notifies the Condition only when it adds a connection to the idle
list. When it frees a slot instead (``put_conn(None)``, a discarded connection, a failed
connect), waiters keep sleeping although they could now connect.
HOW IT SHOWS: only under concurrency: block=True, maxsize=1; thread A holds the connection,
thread B waits in get_conn(timeout=2); A calls put_conn(None): B sleeps the whole 2 s
before it notices the free slot (with timeout=None, until another call happens to notify).
HOW TO FIX IT: notify on every path that frees a connection *or* a slot.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "wakeup"


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
                    self._live += 1  # reserve a slot, then connect outside the lock
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise EmptyPoolError(f"no connection became free within {timeout} s")
                self._cond.wait(remaining)
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
                self._cond.notify()  # a connection is ready: wake one waiter
            else:
                self._live -= 1  # BUG: a slot is free too, but no waiter is woken
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
