"""Buggy pool: a waiter interrupted after its wake-up swallows the wake-up.

WHAT IS WRONG: get_conn waits on a Condition and lets any exception out of
``Condition.wait()`` as it comes. A ``notify()`` reaches one waiter; if that waiter is
then interrupted (KeyboardInterrupt, a gevent or eventlet Timeout) before it takes the
connection, ``threading.Condition`` does not pass the wake-up on: the connection sits
idle while the other waiters sleep.
HOW IT SHOWS: only when an exception arrives while a caller waits: block=True, maxsize=1;
A holds the connection, B and C wait in get_conn(timeout=None); A returns it and the
notify reaches B; B is interrupted: C waits for ever beside an idle connection. The
controlled check ``controlled/interrupt-safe`` delivers that interrupt (every other
check passes this pool).
HOW TO FIX IT: catch BaseException around the wait and, before re-raising, notify another
waiter (a spurious wake-up is harmless: waiters re-check in a loop).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "interrupt-safe"


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
                self._cond.wait(remaining)  # BUG: an exception here swallows a wake-up
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
                self._live -= 1  # a slot is free: wake one waiter too
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
