"""Buggy pool: a waiter that timed out stays in the queue, and is later handed a connection.

WHAT IS WRONG: this pool hands a returned connection (or a freed slot) straight to the
oldest waiter. A waiter whose wait times out raises EmptyPoolError but does not take itself
out of the waiter queue, so a later put_conn hands the connection to a caller that has
already left: nobody will ever use, return or close it.
HOW IT SHOWS: block=True, maxsize=1: get_conn (#1); get_conn(timeout=0.01) raises
EmptyPoolError; put_conn(#1) returns normally, yet #1 is neither idle nor closed: it is
open and lost, and the pool now has no connection to give (close() leaves #1 open).
HOW TO FIX IT: after a timed-out wait, take the lock; if the waiter is still queued,
remove it and raise EmptyPoolError, otherwise something was handed over just in time:
use it.
Mirrors httpcore #502 (a request that timed out stayed in the pool's wait queue).
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "no-leak"

_SLOT = object()  # handed to a waiter: "a slot is free, make a new connection"
_CLOSED = object()  # handed to a waiter: "the pool was closed"


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class _Waiter:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.gift: Any = None  # a connection, _SLOT or _CLOSED


class Pool:
    """Idle list, live count and a FIFO of waiters, each served by direct hand-off."""

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
        self._idle: list[Any] = []
        self._waiters: deque[_Waiter] = deque()
        self._live = 0  # connections in existence, plus slots reserved or handed over
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        me = _Waiter()
        with self._lock:
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            if self._idle:
                return self._idle.pop()
            if not self.block or self._live < self.maxsize:
                self._live += 1
                me.gift = _SLOT
                me.ready.set()
            else:
                self._waiters.append(me)  # put_conn or close() will hand us something
        if not me.ready.wait(timeout):
            # BUG: `me` stays in self._waiters; whatever is handed to it later is lost
            raise EmptyPoolError(f"no connection became free within {timeout} s")
        if me.gift is _CLOSED:
            raise ClosedPoolError("the pool is closed")
        if me.gift is not _SLOT:
            return me.gift
        try:
            return self._factory()
        except BaseException:
            self.put_conn(None)  # the connect failed: give the slot back
            raise

    def put_conn(self, conn: Any) -> None:
        with self._lock:
            if self._waiters:  # (close() empties the queue, so the pool is open)
                waiter = self._waiters.popleft()
                waiter.gift = _SLOT if conn is None else conn
                waiter.ready.set()
                return
            keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
            else:
                self._live -= 1
        if conn is not None and not keep:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            for waiter in self._waiters:
                waiter.gift = _CLOSED
                waiter.ready.set()
            self._waiters.clear()
        for conn in idle:
            conn.close()
