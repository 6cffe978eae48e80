"""Correct pool: a Semaphore of permits, one per idle connection or free slot, and a LIFO list.

DESIGN: with block=True, a permit stands for "a connection is idle, or there is room to make
one": the permits (in the semaphore, plus those won by waiters not yet served) equal the
idle connections plus the free slots. Every path that adds one (a put, a put_conn(None), a
failed connect, a connection closed on return) releases one permit, under the lock. A
caller first looks under the lock: if something is idle or free it takes it then and
there, and takes a permit with it (``acquire(blocking=False)``). Only if nothing is there
does it block on the semaphore; the permit it wins sends it back under the lock to take
what that permit stands for. With block=False the semaphore is not used: an idle
connection or a new one, and at most ``maxsize`` kept on return.
WHY IT IS CORRECT:
- the trap of ``examples/buggy/semaphore_permit_not_conn.py`` is to decide from the
  permits alone: a waiter that has won a permit but not yet taken its connection hides
  that connection from everyone, and a caller with ``timeout=0`` raises EmptyPoolError
  while it sits idle. Here every decision (take, make, EmptyPoolError, ClosedPoolError) is
  made under the lock from the list and the count themselves. A caller that finds
  something there but no permit left (a waiter holds it) takes it anyway and voids the
  waiter's permit (``_voided``): that waiter, back under the lock, looks again or waits
  again. So a permit never stands for nothing, and a free connection is never refused.
- bound: a slot is counted (``_live``) in the same locked step that takes it; capacity:
  every failure, a BaseException from the factory included, uncounts it and releases its
  permit; wakeup: whatever frees a connection or a slot releases a permit, which wakes one
  waiter, and an unvoided permit always has something to take.
- timeout: the semaphore waits on a monotonic deadline, and the final EmptyPoolError is
  decided under the lock, after a last look.
- closed: close() counts the callers blocked on the semaphore (registered under the lock
  before they block) and releases that many permits: each wakes, sees the flag, raises
  ClosedPoolError. A connection returned afterwards is closed.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

_NEW = object()  # what a caller takes when it takes a free slot rather than a connection


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became free within the timeout."""


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not timeout >= 0:  # written so that NaN is refused too
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


def _close_quietly(conn: Any) -> None:
    with suppress(Exception):
        conn.close()


class Pool:
    """Permits for idle connections and free slots (block=True); a LIFO list of idle ones."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout)
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory: Callable[[], Any] = connection_factory or (
            lambda: http.client.HTTPConnection(host, port))
        self._permits = threading.Semaphore(maxsize)  # block=True: every slot starts free
        self._lock = threading.Lock()  # guards everything below
        self._idle: list[Any] = []  # most recently returned last
        self._live = 0  # connections that exist, and slots taken by callers connecting
        self._voided = 0  # permits held by waiters whose connection or slot was taken
        self._waiters = 0  # callers blocked (or about to block) on the semaphore
        self._closed = False

    def get_conn(self, timeout: float | None = None) -> Any:
        _check_timeout(timeout)
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        permit = waiting = False
        while True:
            with self._lock:
                if waiting:
                    self._waiters -= 1
                    waiting = False
                if permit and self._voided:  # what this permit stood for is gone
                    self._voided -= 1
                    permit = False
                if self._closed:
                    raise ClosedPoolError("the pool is closed")
                if permit or self._idle or not self.block or self._live < self.maxsize:
                    if self.block and not permit and not self._permits.acquire(blocking=False):
                        self._voided += 1  # a waiter won the permit: it will look again
                    if self._idle:
                        return self._idle.pop()
                    if self.block:
                        self._live += 1  # take the slot now; connect outside the lock
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise EmptyPoolError(f"no connection became free within {timeout} s")
                self._waiters += 1
                waiting = True
            # Semaphore.acquire overflows past TIMEOUT_MAX; the loop re-checks the deadline
            permit = self._permits.acquire(timeout=None if remaining is None
                                           else min(remaining, threading.TIMEOUT_MAX))
        try:
            return self._factory()
        except BaseException:
            if self.block:
                self._free_slot()  # the connect failed: its slot and permit come back
            raise

    def put_conn(self, conn: Any) -> None:
        if conn is None:  # the caller closed a broken connection: its slot is free
            if self.block:
                self._free_slot()
            return
        with self._lock:
            keep = not self._closed and len(self._idle) < self.maxsize
            if keep:
                self._idle.append(conn)
            elif self.block:
                self._live -= 1
            if self.block:
                self._permits.release()  # a connection is idle, or its slot is free
        if not keep:
            _close_quietly(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            if self.block:
                self._live -= len(idle)
                if self._waiters:
                    self._permits.release(self._waiters)  # one for each, to wake them all
        for conn in idle:
            _close_quietly(conn)

    def _free_slot(self) -> None:
        with self._lock:
            self._live -= 1
            self._permits.release()
