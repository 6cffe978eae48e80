"""An asyncio pool behind the native, blocking interface, so that every check drives it.

The pool lives on one event loop, in a daemon thread of its own; each call from a checker
thread is a coroutine submitted to that loop, and the thread blocks until it ends. Calls from
several threads thus run as concurrent tasks of one loop, interleaved at their awaits by
real timing, which is how an asyncio program shares a pool. (The controlled check drives
the pool on a loop of its own instead: ``poolcheck.run.aio``.)

One loop serves every pool of the process: a pool that blocks it (a ``time.sleep``) stalls
the others too, and the checks' watchdogs report the stall.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's pool loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="poolcheck-asyncio",
                             daemon=True).start()
            _loop = loop
        return _loop


def _call(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coro, shared_loop()).result()


async def _awaited(fn: Callable[[], object]) -> object:
    result = fn()
    return await result if inspect.isawaitable(result) else result


class _Connect:
    """The coroutine function the pool is built with: connecting yields to the loop once,
    as I/O would, then calls ``factory``. Its ``fault`` is the factory's (a place other
    than connecting where making a connection can fail: an adapter's, e.g. constructing
    a library's connection object)."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory

    async def __call__(self) -> Any:
        await asyncio.sleep(0)
        return self.factory()

    def fault(self, point: str) -> None:
        fault = getattr(self.factory, "fault", None)
        if fault is not None:
            fault(point)


class AsyncFacade:
    """``get_conn``, ``put_conn`` and ``close`` of an asyncio pool, blocking."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    def build(cls, make: Callable[[Callable[[], Coroutine[Any, Any, Any]]], Any],
              factory: Callable[[], Any]) -> AsyncFacade:
        """``make(connect)`` builds the pool, on the loop, given a coroutine function that
        makes connections with ``factory`` (connecting yields to the loop once, as I/O
        would)."""
        connect = _Connect(factory)

        async def build() -> Any:
            return make(connect)

        return cls(_call(build()))

    def get_conn(self, timeout: float | None = None) -> Any:
        return _call(self.pool.get_conn(timeout=timeout))

    def put_conn(self, conn: Any) -> None:
        _call(_awaited(lambda: self.pool.put_conn(conn)))

    def close(self) -> None:
        _call(_awaited(self.pool.close))
