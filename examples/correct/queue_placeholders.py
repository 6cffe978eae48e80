"""Correct pool: urllib3's design done right, a LifoQueue pre-filled with None placeholders.

DESIGN: the queue holds ``maxsize`` items; each is an idle connection or None, a
placeholder meaning "a free slot: make a new connection". get_conn takes an item (the
queue does the waiting and the timing) and connects if it got None. put_conn puts the
connection back, or None for a broken one. close() empties the queue and leaves one
_CLOSED sentinel in it, which every waiter passes on to the next.
WHY IT IS CORRECT:
- bound/capacity: with block=True, items in the queue + connections out = maxsize. A
  placeholder goes back only if one was taken: when the factory raises (anything, a
  BaseException too) or via put_conn(None); never after EmptyPoolError (urllib3 #1758).
- block=False: when the queue is empty, an extra connection is made without taking a
  slot; a full queue refuses it on return, so at most ``maxsize`` are kept idle.
- timeout/wakeup: ``Queue.get`` waits on a monotonic deadline and wakes on every put.
- closed: one lock orders every put-back against close(), so nothing is queued after the
  final sweep; a caller blocked in ``get`` receives _CLOSED within moments of close(),
  puts it back for the next waiter and raises ClosedPoolError. After close() the queue
  holds only that one sentinel, so putting it back never finds the queue full.
"""

from __future__ import annotations

import http.client
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

_CLOSED = object()  # close() puts this in the queue; each waiter that gets it passes it on


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """A LifoQueue of idle connections and None placeholders, ``maxsize`` items at most."""

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
        try:
            conn = self._queue.get(block=self.block, timeout=timeout)
        except queue.Empty:
            if self._closed:  # the sentinel was in another waiter's hands just then
                raise ClosedPoolError("the pool is closed") from None
            if self.block:
                raise EmptyPoolError(f"no connection became free within {timeout} s") from None
            return self._factory()  # block=False: an extra connection, no slot taken
        if conn is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # wake the next waiter too
            raise ClosedPoolError("the pool is closed")
        if conn is not None:
            return conn
        try:
            return self._factory()
        except BaseException:
            self._put_back(None)  # the connect failed: return the placeholder we took
            raise

    def put_conn(self, conn: Any) -> None:
        if not self._put_back(conn) and conn is not None:
            with suppress(Exception):
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
                with suppress(Exception):
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
