"""Correct pool: a returned connection goes straight to the longest waiter (direct hand-off).

DESIGN: with block=True, a caller that finds nothing idle and no room joins a FIFO queue of
waiters, each with an Event of its own. ``put_conn`` gives its connection directly to the
first waiter (the connection never becomes idle), and ``put_conn(None)`` gives that waiter
the freed slot, to connect with; only when nobody waits does a connection go to the idle
list or a slot become free. Every hand-off is decided under the lock, so a connection is
never handed to two callers nor to nobody.
WHY IT IS CORRECT:
- wakeup: whatever frees a connection or a slot serves a waiter at once, oldest first (fair:
  a newcomer cannot overtake a waiter, since it takes only what is idle and nothing is idle
  while someone waits).
- timeout: a waiter that times out leaves the queue under the lock, unless it was served
  just then: it then keeps what it was given (a connection or a slot) instead of dropping
  it, so nothing is lost between the timeout and the hand-off.
- capacity, bound: a slot passed to a waiter stays counted (``_live``); a failed connect
  gives it back through the same path, to the next waiter or the pool.
- closed: ``close()`` wakes every waiter with nothing, and each raises ClosedPoolError; a
  connection returned afterwards is closed.
"""

from __future__ import annotations

import http.client
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

EXPECTED_INVARIANT = None


class ClosedPoolError(Exception):
    pass


class EmptyPoolError(Exception):
    pass


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or not timeout >= 0):
        raise ValueError(f"timeout must be a number >= 0 or None, not {timeout!r}")


class _Waiter:
    """One caller waiting: what it was given, and the Event that says it was."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.slot = False  # given a free slot: connect with it
        self.served = threading.Event()  # set under the pool's lock, with conn or slot


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
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # newest last; empty while anyone waits
        self._live = 0
        self._waiters: deque[_Waiter] = deque()  # oldest first
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            if self._idle:
                return self._idle.pop()
            if not self.block or self._live < self.maxsize:
                self._live += 1  # reserve the slot; connect outside the lock
                waiter = None
            elif timeout is not None and timeout <= 0:
                raise EmptyPoolError("no connection is free (timeout 0)")
            else:
                waiter = _Waiter()
                self._waiters.append(waiter)
        if waiter is not None:
            try:
                waiter.served.wait(timeout)
                with self._lock:
                    timed_out = not waiter.served.is_set()  # and nobody served it since
                    if timed_out:
                        self._waiters.remove(waiter)
            except BaseException:  # interrupted while it waited: hand on what it was given
                self._abandon(waiter)
                raise
            if timed_out:
                raise EmptyPoolError(f"no connection became free within {timeout} s")
            if waiter.conn is not None:
                return waiter.conn
            if not waiter.slot:
                raise ClosedPoolError("the pool was closed while waiting")
        try:
            return self._factory()
        except BaseException:
            self._pass_on(None)  # the connect failed: its slot goes on
            raise

    def _abandon(self, waiter: _Waiter) -> None:
        with self._lock:
            served = waiter.served.is_set()
            if not served and waiter in self._waiters:
                self._waiters.remove(waiter)
        if served and (waiter.conn is not None or waiter.slot):
            self._pass_on(waiter.conn)  # the connection, or the slot, goes to the next

    def _pass_on(self, conn: Any) -> None:
        """put_conn that an interrupt cannot stop half-way: an exception that arrives while
        it waits for the lock (CPython's acquire is interruptible) is raised afterwards."""
        interrupted: BaseException | None = None
        while True:
            try:
                self._lock.acquire()
                break
            except BaseException as exc:
                interrupted = exc
        try:
            extra = self._put_locked(conn)
        finally:
            self._lock.release()
        _close_quietly(extra)
        if interrupted is not None:
            raise interrupted

    def put_conn(self, conn: Any) -> None:
        with self._lock:
            extra = self._put_locked(conn)
        _close_quietly(extra)

    def _put_locked(self, conn: Any) -> Any:
        """Hand ``conn`` (None: its slot) to the oldest waiter, else keep it idle; returns
        what is to be closed, outside the lock."""
        if not self._closed and self._waiters:
            waiter = self._waiters.popleft()
            if conn is None:
                waiter.slot = True  # the slot passes on, still counted
            else:
                waiter.conn = conn
            waiter.served.set()
            return None
        if conn is not None and not self._closed and len(self._idle) < self.maxsize:
            self._idle.append(conn)
            return None
        self._live -= 1
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            waiters, self._waiters = self._waiters, deque()
            for waiter in waiters:
                waiter.served.set()  # with nothing: it raises ClosedPoolError
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    if conn is not None:
        with suppress(Exception):
            conn.close()
