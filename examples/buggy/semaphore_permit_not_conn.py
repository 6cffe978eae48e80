"""Buggy pool: a Semaphore of permits for block=True, and a LIFO list of idle connections.

WHAT IS WRONG: a permit is not a connection. A waiter that takes the permit released by
``put_conn(#8)`` does not take #8 itself: it pops whatever is newest when it gets to the
list, perhaps #7 returned a moment later. Meanwhile a third caller with ``timeout=0``
finds no permit and raises EmptyPoolError although #8 sits idle, and #8 stays idle after.
Every invariant of section 3 holds (at most maxsize exist, no slot is lost, close()
relays a wake-up to every waiter); only the order of events is impossible.
HOW IT SHOWS: only under concurrency, and only in the history: no order of the calls
that respects real time explains an EmptyPoolError while a connection was idle and no
call in progress could take it. The linearizability check rejects it; the per-invariant
judges, which look at one property at a time, do not.
HOW TO FIX IT: decide "a connection, a new slot, or wait" in one critical section under
one lock (a Condition), as the bundled pool does; or make the permit carry the
connection (a queue of connections and placeholders, as in
``examples/correct/queue_placeholders.py``).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

EXPECTED_INVARIANT = "linearizable"


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """Permits bound the connections in use; the idle list bounds those kept."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory: Callable[[], Any] = connection_factory or (
            lambda: http.client.HTTPConnection(host, port))
        self._permits = threading.Semaphore(maxsize)  # used only with block=True
        self._lock = threading.Lock()  # guards _idle and _closed
        self._idle: list[Any] = []
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        if self._closed:
            raise ClosedPoolError("the pool is closed")
        if self.block and not self._permits.acquire(timeout=timeout):
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            raise EmptyPoolError(f"no connection became free within {timeout} s")
        with self._lock:
            closed = self._closed
            conn = self._idle.pop() if self._idle and not closed else None
        if closed:
            self._release_permit()  # pass the wake-up on to the next waiter
            raise ClosedPoolError("the pool is closed")
        if conn is not None:
            return conn
        try:
            return self._factory()
        except BaseException:
            self._release_permit()  # the connect failed: its permit is free again
            raise

    def put_conn(self, conn: Any) -> None:
        with self._lock:
            keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
        if conn is not None and not keep:
            with suppress(Exception):
                conn.close()
        self._release_permit()  # last: the next permit holder finds conn idle (or closed)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self._release_permit()  # starts the relay that wakes every waiter
        for conn in idle:
            with suppress(Exception):
                conn.close()

    def _release_permit(self) -> None:
        if self.block:
            self._permits.release()
