"""Buggy pool: after a failed connect, get_conn returns still holding the lock.

WHAT IS WRONG: the pool takes and drops its plain ``threading.Lock`` by hand, and every
exit must call ``release()``. The path that gives the slot back when the factory raises
re-acquires the lock and forgets to let go of it.
HOW IT SHOWS: the first connect that fails propagates its error correctly; the next call
of any method (even from the same thread, since the lock is not reentrant) hangs for ever.
HOW TO FIX IT: use ``with self._cond:`` blocks, which release on every exit, including
exceptions; at least, ``try/finally`` around each acquire.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "deadlock-free"


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """A plain Lock taken by hand, a Condition on it, a LIFO idle list and a live count."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory: Callable[[], Any] = connection_factory or (
            lambda: http.client.HTTPConnection(host, port))
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._idle: list[Any] = []
        self._live = 0  # connections in existence, plus slots reserved by callers connecting
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        self._lock.acquire()
        while True:
            if self._closed:
                self._lock.release()
                raise ClosedPoolError("the pool is closed")
            if self._idle:
                conn = self._idle.pop()
                self._lock.release()
                return conn
            if not self.block or self._live < self.maxsize:
                self._live += 1  # reserve a slot, then connect outside the lock
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self._lock.release()
                raise EmptyPoolError(f"no connection became free within {timeout} s")
            self._cond.wait(remaining)
        self._lock.release()
        try:
            return self._factory()
        except BaseException:
            self._lock.acquire()  # the connect failed: give the slot back
            self._live -= 1
            self._cond.notify()
            raise  # BUG: leaves with the lock held; every later call blocks on acquire()

    def put_conn(self, conn: Any) -> None:
        self._lock.acquire()
        keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
        if keep:
            self._idle.append(conn)
        else:
            self._live -= 1  # its slot is free again
        self._cond.notify()
        self._lock.release()
        if conn is not None and not keep:
            conn.close()

    def close(self) -> None:
        self._lock.acquire()
        self._closed = True
        idle, self._idle = self._idle, []
        self._live -= len(idle)
        self._cond.notify_all()
        self._lock.release()
        for conn in idle:
            conn.close()
