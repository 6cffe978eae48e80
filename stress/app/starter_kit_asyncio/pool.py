"""Your asyncio connection pool. Build it step by step with EXERCISE.md.

Every method below that is still to write raises ``NotImplementedError("TODO (step N):
...")``. poolcheck quotes that message in its report, so the report tells you what is
left. Each step of EXERCISE.md replaces some of these ``raise`` lines with real code:
delete a TODO line only when the step that names it is done.

What the methods must do is the contract (docs/CONTRACT.md, sections 1 to 3, summed up in
EXERCISE.md). ``get_conn`` is a coroutine function (``async def``); ``put_conn`` and
``close`` are plain functions: they never need to wait. Use the standard library only.
"""

from __future__ import annotations

import http.client
import math
from collections.abc import Awaitable, Callable
from typing import Any

# import asyncio  # step 2 needs it
# from collections import deque  # step 2 may want it


class ClosedPoolError(Exception):
    """get_conn on a closed pool."""


class EmptyPoolError(Exception):
    """block=True and no connection became available within the timeout."""


def check_timeout(timeout: float | None) -> None:
    """Refuse a timeout that is not None or a number of seconds >= 0. (Done for you.)"""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """Connections to one ``host:port`` for the tasks of one event loop; at most
    ``maxsize`` of them kept idle.

    With ``block=True`` at most ``maxsize`` exist at once, and ``get_conn`` waits up to
    ``timeout`` seconds (None: for ever) for one to come back.
    """

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Awaitable[Any]] | None = None) -> None:
        # Checking the arguments is done for you: the contract asks for it, but it has
        # nothing to do with tasks.
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int >= 1, not {maxsize!r}")
        if maxsize < 1:
            raise ValueError(f"maxsize must be an int >= 1, not {maxsize!r}")
        check_timeout(timeout)
        if connection_factory is not None and not callable(connection_factory):
            raise TypeError("connection_factory must be a coroutine function")

        async def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection(host, port)  # connects on its first request

        self.maxsize = maxsize
        self.block = block
        self.timeout = timeout  # what get_conn(timeout=None) uses
        # `await self._factory()` makes one new connection (it may raise anything, and
        # the task may be cancelled while it connects: let it through)
        self._factory: Callable[[], Awaitable[Any]] = connection_factory or connect
        # TODO (step 1): the pool's state: a list of idle connections (no lock: see step 1).
        # TODO (step 2): a count of the connections that exist, and a queue of waiters.
        # TODO (step 5): a closed flag.

    async def get_conn(self, timeout: float | None = None) -> Any:
        """An idle connection, else a new one if there is room, else wait (block=True)."""
        check_timeout(timeout)
        if timeout is None:
            timeout = self.timeout
        if self.block:
            raise NotImplementedError(
                "TODO (step 2): block=True: reuse an idle connection, else make one if "
                "fewer than maxsize exist, else wait for one to be handed to you")
        raise NotImplementedError(
            "TODO (step 1): block=False: reuse an idle connection, else make a new one")

    def put_conn(self, conn: Any) -> None:
        """Give back a connection; None gives back the slot of one the caller closed."""
        if conn is None:
            raise NotImplementedError(
                "TODO (step 4): put_conn(None): give back the slot of a broken connection")
        raise NotImplementedError(
            "TODO (step 1): keep the connection if fewer than maxsize are idle, else "
            "close it")

    def close(self) -> None:
        """Close the idle connections now, the others when they come back; wake waiters."""
        raise NotImplementedError(
            "TODO (step 5): close the pool: close idle connections, wake every waiter")
