"""The asyncio pool: a LIFO stack of idle connections, a count, and a queue of waiters.

``_live`` counts the connections that exist (idle plus checked out) and every slot that a
caller has reserved while it connects, as in the thread pool. There is no lock: between two
awaits a task runs alone, so each decision below is one uninterrupted step. A returned
connection, or a freed slot, is *handed* to the oldest waiter by resolving its future, so
it never passes through the idle stack where a newcomer could take it first.

What asyncio adds is cancellation. ``task.cancel()`` raises ``CancelledError`` (a
``BaseException``: ``except Exception`` lets it through) at the ``await`` where the task is
suspended, and ``get_conn`` has exactly two:

- ``await fut`` in ``_wait``: cancelled before anything was handed to it, the waiter leaves
  the queue and has taken nothing. Cancelled after ``put_conn`` resolved its future but
  before it ran again, it holds a connection or a slot that nobody else can see: it passes
  it on (to the next waiter, the idle stack, or frees the slot), as ``put_conn`` would.
  ``close()`` and the time-out resolve the future with nothing to pass on.
- ``await self._factory()``: the caller holds a reserved slot. Cancelled there, or failing
  in any way, the slot goes to the next waiter or is freed, and the exception propagates
  unchanged. A half-made connection inside the factory is the factory's to close.

Once the factory has returned, ``get_conn`` returns without another ``await``, so a made
connection always reaches its caller.
"""

from __future__ import annotations

import asyncio
import http.client
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Final

from poolcheck.pool.pool import ClosedPoolError, EmptyPoolError, PoolError, _check_timeout

__all__ = ["AsyncPool", "ClosedPoolError", "EmptyPoolError", "PoolError"]

# What a waiter's future can hold besides a connection:
_SLOT: Final = object()  # a free slot, to connect with
_CLOSED: Final = object()  # close() woke it
_TIMEOUT: Final = object()  # its timer ran out


class AsyncPool:
    """Connections to one ``host:port`` for asyncio tasks, at most ``maxsize`` kept idle.

    ``block=True`` also caps the connections in existence at ``maxsize`` and makes
    ``get_conn`` wait up to ``timeout`` seconds (None: for ever) for one to come back.
    ``connection_factory`` is a coroutine function; the default makes an
    ``http.client.HTTPConnection``, which connects (blocking) on its first request.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        maxsize: int = 1,
        block: bool = False,
        timeout: float | None = None,
        connection_factory: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty string, not {host!r}")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise ValueError(f"port must be an int from 1 to 65535 or None, not {port!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int >= 1, not {maxsize!r}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        _check_timeout(timeout, "timeout")
        if connection_factory is not None and not callable(connection_factory):
            raise TypeError("connection_factory must be a coroutine function")

        async def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection(host, port)  # does not connect yet

        self.host = host
        self.port = port
        self.maxsize = maxsize
        self.block = block
        self.timeout = timeout
        self._factory = connection_factory or connect
        self._idle: dict[int, Any] = {}  # id(conn) -> conn, newest last
        self._live = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()  # oldest first
        self._closed = False
        self.num_connections = 0  # connections made, ever

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._idle)} idle, {self._live} live"
        return f"<AsyncPool {self.host}:{self.port} maxsize={self.maxsize} {state}>"

    async def get_conn(self, timeout: float | None = None) -> Any:
        """An idle connection, else a new one if there is room, else wait (``block``)."""
        if timeout is None:
            timeout = self.timeout
        else:
            _check_timeout(timeout, "timeout")
        if self._closed:
            raise ClosedPoolError(f"{self!r} is closed")
        if self._idle:  # nothing is idle while anyone waits: no overtaking
            return self._idle.popitem()[1]
        if not self.block or self._live < self.maxsize:
            self._live += 1  # reserve the slot, then connect
        else:
            got = await self._wait(timeout)
            if got is _CLOSED:
                raise ClosedPoolError(f"{self!r} was closed while waiting")
            if got is _TIMEOUT:
                raise EmptyPoolError(f"no connection became free within {timeout} s "
                                     f"(maxsize={self.maxsize}, block=True)")
            if got is not _SLOT:
                return got
        try:
            conn = await self._factory()
        except BaseException:  # a failed connect, or a cancellation: the slot goes on
            self._release_slot()
            raise
        self.num_connections += 1
        return conn

    async def _wait(self, timeout: float | None) -> Any:
        """Queue up; what ``put_conn``, ``close()`` or the timer hands this waiter."""
        if timeout is not None and timeout <= 0:
            return _TIMEOUT
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(fut)
        timer = None if timeout is None else loop.call_later(timeout, self._expire, fut)
        try:
            return await fut
        except BaseException:  # cancelled: pass on what was handed to us, or leave the queue
            if fut.done() and not fut.cancelled():
                self._pass_on(fut.result())
            else:
                fut.cancel()
                with suppress(ValueError):  # put_conn may have dropped it already
                    self._waiters.remove(fut)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _expire(self, fut: asyncio.Future[Any]) -> None:
        if not fut.done():  # not served in time: it leaves the queue, empty-handed
            self._waiters.remove(fut)
            fut.set_result(_TIMEOUT)

    def _hand_on(self, what: Any) -> bool:
        """Give a connection or ``_SLOT`` to the oldest waiter; False if nobody waits."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():  # a cancelled waiter's future waits here for its task to run
                fut.set_result(what)
                return True
        return False

    def _pass_on(self, got: Any) -> None:
        if got is _SLOT:
            self._release_slot()
        elif got is not _CLOSED and got is not _TIMEOUT:
            self.put_conn(got)

    def put_conn(self, conn: Any) -> None:
        """Give a connection back; None gives back the slot of one the caller closed."""
        if conn is None:
            self._release_slot()
            return
        if id(conn) in self._idle:
            raise ValueError(f"{conn!r} was returned twice")
        if not self._closed:
            if self._hand_on(conn):
                return
            if len(self._idle) < self.maxsize:
                self._idle[id(conn)] = conn
                return
        self._live -= 1
        _close_quietly(conn)

    def _release_slot(self) -> None:
        if not self._hand_on(_SLOT):  # the slot stays counted for the waiter it goes to
            self._live -= 1

    def close(self) -> None:
        """Close idle connections now, the others when they come back; wake all waiters."""
        self._closed = True
        idle, self._idle = list(self._idle.values()), {}
        self._live -= len(idle)
        waiters, self._waiters = self._waiters, deque()
        for fut in waiters:
            if not fut.done():
                fut.set_result(_CLOSED)
        for conn in idle:
            _close_quietly(conn)

    @asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """Check a connection out for an ``async with`` block; an exception closes it."""
        conn = await self.get_conn(timeout)
        try:
            yield conn
        except BaseException:
            _close_quietly(conn)
            self.put_conn(None)
            raise
        self.put_conn(conn)


def _close_quietly(conn: Any) -> None:
    """Close a connection we are giving up; its own errors change nothing for us."""
    with suppress(Exception):
        conn.close()
