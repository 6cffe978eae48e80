"""Buggy pool: after EmptyPoolError, get_conn puts back a placeholder it never took.

WHAT IS WRONG: the queue holds ``maxsize`` items, each an idle connection or a None
placeholder ("a free slot: make a new connection"). get_conn's cleanup gives back a
placeholder whenever it fails with ``conn`` still None, meaning to undo a failed connect;
but conn is also None when the queue was empty and nothing was taken at all.
HOW IT SHOWS: block=True, maxsize=1: get_conn (connection #1), get_conn(timeout=0) raises
EmptyPoolError and adds a placeholder; the next get_conn makes connection #2 while #1 is
still checked out: two connections exist with maxsize 1.
HOW TO FIX IT: give a placeholder back only if one was taken: wrap just the factory call
in the ``try/except BaseException``.
Mirrors urllib3 #1758 (fixed by PR #1866, "Do not put a None in a connection pool if it was
empty").
"""

from __future__ import annotations

import http.client
import queue
import threading
from collections.abc import Callable
from typing import Any

EXPECTED_INVARIANT = "bound"

_CLOSED = object()  # close() puts this in the queue; each waiter that gets it passes it on


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """A LifoQueue pre-filled with ``maxsize`` None placeholders, urllib3's design."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory: Callable[[], Any] = connection_factory or (
            lambda: http.client.HTTPConnection(host, port))
        self._queue: queue.LifoQueue[Any] = queue.LifoQueue(maxsize)
        for _ in range(maxsize):
            self._queue.put(None)
        self._lock = threading.Lock()  # puts back and close() happen one at a time
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        if self._closed:
            raise ClosedPoolError("the pool is closed")
        conn: Any = None
        try:
            try:
                conn = self._queue.get(block=self.block, timeout=timeout)
            except queue.Empty:
                if self._closed:
                    raise ClosedPoolError("the pool is closed") from None
                if self.block:
                    raise EmptyPoolError(f"no connection became free within {timeout} s") from None
                return self._factory()  # block=False: an extra connection, no slot taken
            if conn is _CLOSED:
                self._queue.put_nowait(_CLOSED)  # wake the next waiter too
                raise ClosedPoolError("the pool is closed")
            return conn if conn is not None else self._factory()
        except BaseException:
            if conn is None:  # BUG: also true after EmptyPoolError, when nothing was taken
                self._put_back(None)  # meant for: the connect failed, give the slot back
            raise

    def put_conn(self, conn: Any) -> None:
        if not self._put_back(conn) and conn is not None:
            conn.close()  # the pool is closed or already full

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            items = []
            while True:  # take out every idle connection and placeholder
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._queue.put_nowait(_CLOSED)
        for conn in items:
            if conn is not None:
                conn.close()

    def _put_back(self, item: Any) -> bool:
        """Queue a connection or a placeholder; False if the pool is closed or full."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                return False
            return True
