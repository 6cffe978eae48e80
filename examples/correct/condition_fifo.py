"""Correct pool: one Condition, ``wait_for`` a predicate, and a FIFO deque of idle connections.

DESIGN: a count of live connections (plus slots reserved by callers connecting) and a
deque of idle ones, both guarded by one Condition. get_conn waits with
``Condition.wait_for(self._can_go, timeout)``, then takes the idle connection that has
waited longest (``popleft``: FIFO spreads the work over all kept connections), or reserves
a slot and connects outside the lock. Waiters are served fair-ish: ``notify()`` wakes the
longest-sleeping thread, though a newcomer may still get in first.
WHY IT IS CORRECT:
- the predicate is checked under the lock after every wake-up, so no state change is
  missed, and ``wait_for`` keeps a monotonic deadline: EmptyPoolError never comes early.
- every path that frees a connection or a slot notifies, under the lock (wakeup).
- the slot is reserved in the same locked step as the check (bound), and given back on
  every failure, BaseException included (capacity).
- close() sets the flag and ``notify_all()``: each waiter wakes, re-checks ``_can_go``
  (true once closed) and raises ClosedPoolError.
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """At most ``maxsize`` idle connections; with ``block=True`` at most ``maxsize`` in all."""

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
        self._idle: deque[Any] = deque()  # oldest-returned on the left
        self._live = 0
        self._closed = False

    def _can_go(self) -> bool:
        """True when get_conn need not wait (called with the lock held)."""
        room = not self.block or self._live < self.maxsize
        return self._closed or bool(self._idle) or room

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        with self._cond:
            ready = self._cond.wait_for(self._can_go, timeout)
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            if not ready:
                raise EmptyPoolError(f"no connection became free within {timeout} s")
            if self._idle:
                return self._idle.popleft()
            self._live += 1  # reserve the slot now; connect outside the lock
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
                self._live -= 1
            self._cond.notify()  # a connection or a slot is free: wake the oldest waiter
        if conn is not None and not keep:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, deque()
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with suppress(Exception):
                conn.close()
