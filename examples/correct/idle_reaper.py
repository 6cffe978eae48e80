"""Correct pool: a background thread closes connections that sat idle too long (a reaper).

DESIGN: the bundled pool's design (a Condition, a LIFO list of idle connections, a count of
live ones), plus a daemon thread that every ``REAP_EVERY`` seconds closes the connections
idle for more than ``IDLE_TIMEOUT``, as HikariCP's ``idleTimeout``, SQLAlchemy's
``pool_recycle`` or psycopg_pool's ``max_idle`` do. The times here are tiny so that the
checks see the reaper at work. The thread holds the pool only weakly and ends with it, or
at ``close()``.
WHY IT IS CORRECT:
- the contract lets a pool close an idle connection at any time: nobody holds it. The
  reaper takes it out of the idle list, closes it and uncounts it in one locked step, so
  no caller can be handed it, a caller waiting for a slot is woken (wakeup, capacity),
  and the slot is free only once the connection no longer exists (bound: closing it
  after the lock is let go would let a waiter make one more in between).
- it never touches a checked-out connection (exclusive), and ``close()`` closes whatever
  is still idle (no-leak).
- everything else is the bundled pool's: slots counted under the lock (bound), given back
  on every failure (capacity), one deadline per wait (timeout), every waiter woken by
  ``close()`` (closed).
"""

from __future__ import annotations

import http.client
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from typing import Any

EXPECTED_INVARIANT = None
IDLE_TIMEOUT = 0.005  # seconds a connection may sit idle
REAP_EVERY = 0.002  # seconds between two rounds of the reaper


class ClosedPoolError(Exception):
    pass


class EmptyPoolError(Exception):
    pass


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or not timeout >= 0):
        raise ValueError(f"timeout must be a number >= 0 or None, not {timeout!r}")


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
        self._idle: list[tuple[Any, float]] = []  # (connection, idle since), newest last
        self._live = 0
        self._closed = False
        threading.Thread(target=_reap, args=(weakref.ref(self),), daemon=True).start()

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._closed or bool(self._idle) or not self.block
                or self._live < self.maxsize, timeout)
            if self._closed:
                raise ClosedPoolError("the pool is closed")
            if not ready:
                raise EmptyPoolError(f"no connection became free within {timeout} s")
            if self._idle:
                return self._idle.pop()[0]
            self._live += 1  # reserve the slot; connect outside the lock
        try:
            return self._factory()
        except BaseException:
            self.put_conn(None)  # the connect failed: give the slot back
            raise

    def put_conn(self, conn: Any) -> None:
        with self._cond:
            keep = conn is not None and not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append((conn, time.monotonic()))
            else:
                self._live -= 1
            self._cond.notify()
        if conn is not None and not keep:
            with suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            with suppress(Exception):
                conn.close()

    def _reap_once(self) -> bool:
        """Close what sat idle too long; False once the pool is closed."""
        with self._cond:
            if self._closed:
                return False
            now = time.monotonic()
            stale = [c for c, since in self._idle if now - since > IDLE_TIMEOUT]
            if stale:
                self._idle = [(c, s) for c, s in self._idle if now - s <= IDLE_TIMEOUT]
                # closed before their slots are freed, under the lock: a connection exists
                # until it is closed, so freeing its slot first would let a waiter make one
                # more than maxsize (bound)
                for conn in stale:
                    with suppress(Exception):
                        conn.close()
                self._live -= len(stale)
                self._cond.notify(len(stale))  # each freed slot may serve a waiter
        return True


def _reap(pool_ref: weakref.ref[Pool]) -> None:
    while True:
        time.sleep(REAP_EVERY)
        pool = pool_ref()
        if pool is None or not pool._reap_once():
            return
        del pool  # hold it only while reaping
