"""The pool: one lock, a LIFO stack of idle connections and a count.

``_live`` counts the connections that exist (idle plus checked out) and every slot that a
caller has reserved while it connects. Every path that gives up a connection gives its
slot back, under the lock, and wakes one waiter: that is the whole of the thread-safety.
Connecting and closing happen outside the lock, so one slow server never stalls the rest.

The common case, an idle connection out and back in, takes the lock once each way and
nothing else: the idle stack is a dict keyed by ``id`` (``popitem`` is LIFO, and a double
return is one lookup), and ``notify`` is skipped when ``_waiting`` says nobody waits.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any, Literal, overload
from urllib.parse import urlsplit


class PoolError(Exception):
    """Base of the pool's own errors."""


class ClosedPoolError(PoolError):
    """``get_conn`` on a pool that has been closed."""


class EmptyPoolError(PoolError):
    """No connection became available within the timeout (``block=True``)."""


class HostMismatchError(PoolError, ValueError):
    """A URL names another host than the one the pool serves."""


def _check_timeout(timeout: float | None, what: str) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{what} must be >= 0 seconds or None, not {timeout!r}")


class Pool:
    """Connections to one ``host:port``, at most ``maxsize`` kept idle.

    ``block=True`` also caps the connections in existence at ``maxsize`` and makes
    ``get_conn`` wait up to ``timeout`` seconds (None: for ever) for one to come back.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        maxsize: int = 1,
        block: bool = False,
        timeout: float | None = None,
        connection_factory: Callable[[], Any] | None = None,
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
            raise TypeError("connection_factory must be callable with no arguments")
        self.host = host
        self.port = port
        self.maxsize = maxsize
        self.block = block
        self.timeout = timeout
        self._factory = connection_factory or (lambda: http.client.HTTPConnection(host, port))
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # only for waiting and waking
        self._idle: dict[int, Any] = {}  # id(conn) -> conn, newest last
        self._live = 0
        self._waiting = 0  # threads inside self._cond.wait()
        self._closed = False
        self.num_connections = 0  # connections made, ever
        self.num_requests = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._idle)} idle, {self._live} live"
        return f"<Pool {self.host}:{self.port} maxsize={self.maxsize} {state}>"

    # -- checkout and check-in --------------------------------------------------------

    def get_conn(self, timeout: float | None = None) -> Any:
        """An idle connection, else a new one if there is room, else wait (``block``)."""
        if timeout is None:
            timeout = self.timeout
        else:
            _check_timeout(timeout, "timeout")
        deadline = None
        with self._lock:
            while True:
                if self._closed:
                    raise ClosedPoolError(f"{self!r} is closed")
                if self._idle:
                    return self._idle.popitem()[1]
                if not self.block or self._live < self.maxsize:
                    self._live += 1  # reserve the slot, then connect outside the lock
                    break
                if timeout is not None:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + timeout
                    if now >= deadline:
                        raise EmptyPoolError(
                            f"no connection became free within {timeout} s "
                            f"(maxsize={self.maxsize}, block=True)"
                        )
                self._waiting += 1
                try:
                    # Condition.wait overflows past TIMEOUT_MAX; the loop re-checks the deadline
                    self._cond.wait(None if deadline is None
                                    else min(deadline - now, threading.TIMEOUT_MAX))
                except BaseException:  # interrupted (KeyboardInterrupt, a gevent Timeout):
                    if self._waiting > 1:  # a notify() may have reached us; pass it on
                        self._cond.notify()
                    raise
                finally:
                    self._waiting -= 1
        try:
            conn = self._factory()
        except BaseException:
            self._release_slot()
            raise
        try:
            with self._lock:
                self.num_connections += 1
        except BaseException:  # interrupted while it waited for the lock: nobody gets conn
            _close_quietly(conn)
            self._release_slot()
            raise
        return conn

    def put_conn(self, conn: Any) -> None:
        """Give a connection back; None gives back the slot of one the caller closed."""
        if conn is None:
            self._release_slot()
            return
        key = id(conn)  # unique while the connection is idle: the dict keeps it alive
        with self._lock:
            if key in self._idle:
                raise ValueError(f"{conn!r} was returned twice")
            if not self._closed and len(self._idle) < self.maxsize:
                self._idle[key] = conn
                if self._waiting:
                    self._cond.notify()
                return
            self._live -= 1
            if self._waiting:
                self._cond.notify()
        _close_quietly(conn)

    def close(self) -> None:
        """Close idle connections now, the others when they come back; wake all waiters."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle.values()), {}
            self._live -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            _close_quietly(conn)

    def _release_slot(self) -> None:
        with _uninterrupted(self._lock):  # else an interrupt here loses the slot for good
            self._live -= 1
            if self._waiting:
                self._cond.notify()

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        """Check a connection out for a ``with`` block; an exception closes it."""
        conn = self.get_conn(timeout)
        try:
            yield conn
        except BaseException:
            _close_quietly(conn)
            self.put_conn(None)
            raise
        self.put_conn(conn)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------

    @overload
    def request(self, method: str, url: str, body: bytes | str | None = ...,
                headers: Mapping[str, str] | None = ..., *,
                preload_content: Literal[True] = ..., timeout: float | None = ...) -> Response: ...

    @overload
    def request(self, method: str, url: str, body: bytes | str | None = ...,
                headers: Mapping[str, str] | None = ..., *,
                preload_content: Literal[False], timeout: float | None = ...
                ) -> StreamingResponse: ...

    def request(
        self,
        method: str,
        url: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        preload_content: bool = True,
        timeout: float | None = None,
    ) -> Response | StreamingResponse:
        """Send one request on a pooled connection and return its response.

        With ``preload_content`` (the default) the whole body is read and the connection
        is back in the pool before this returns. Otherwise the connection goes back when
        the returned ``StreamingResponse`` has been read to the end or closed.
        """
        path = self._path_of(url)
        conn = self.get_conn(timeout)
        try:
            with self._lock:
                self.num_requests += 1
            conn.request(method, path, body=body, headers=dict(headers or {}))
            raw = conn.getresponse()
            if not preload_content:
                return StreamingResponse(raw, conn, self)
            data = raw.read()
        except BaseException:
            _close_quietly(conn)
            self.put_conn(None)
            raise
        response = Response(raw.status, raw.reason, raw.headers, data)
        self._give_back(conn, raw)
        return response

    urlopen = request

    def _give_back(self, conn: Any, raw: http.client.HTTPResponse) -> None:
        """Return a connection whose response was read to its end."""
        if raw.will_close:  # the server will not take another request on it
            _close_quietly(conn)
            self.put_conn(None)
        else:
            self.put_conn(conn)

    def _path_of(self, url: str) -> str:
        parts = urlsplit(url)
        elsewhere = parts.scheme != "http" or parts.hostname != self.host.lower() or (
            (parts.port or 80) != (self.port or 80))
        if (parts.scheme or parts.netloc) and elsewhere:
            raise HostMismatchError(
                f"{url!r} is not on http://{self.host}:{self.port or 80}; "
                "this pool serves one host only"
            )
        path = parts.path or "/"
        return f"{path}?{parts.query}" if parts.query else path


class Response:
    """A response read to its end: ``status``, ``reason``, ``headers``, ``data``."""

    def __init__(self, status: int, reason: str, headers: Any, data: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.data = data

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.data)} bytes>"


class StreamingResponse:
    """A response read on demand; its connection goes back exactly once.

    Read to the end, the connection returns to the pool; closed early (or failed), the
    connection is closed, since unread bytes would poison the next request on it.
    """

    def __init__(self, raw: http.client.HTTPResponse, conn: Any, pool: Pool) -> None:
        self.status = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._raw = raw
        self._conn: Any = conn
        self._pool = pool
        self._lock = threading.Lock()

    def read(self, amt: int | None = None) -> bytes:
        try:
            data = self._raw.read(amt)
        except BaseException:
            self._release(clean=False)
            raise
        if amt is None or (amt > 0 and not data) or self._raw.isclosed():
            self._release(clean=self._raw.isclosed())
        return data

    def close(self) -> None:
        self._release(clean=self._raw.isclosed())

    def __enter__(self) -> StreamingResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _release(self, clean: bool) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        if clean:
            self._pool._give_back(conn, self._raw)
        else:
            self._raw.close()
            _close_quietly(conn)
            self._pool.put_conn(None)


@contextmanager
def _uninterrupted(lock: threading.Lock) -> Iterator[None]:
    """Hold ``lock`` for work that must be done: an exception that interrupts the wait for
    it (KeyboardInterrupt: CPython's acquire is interruptible) is raised after the work."""
    interrupted: BaseException | None = None
    while True:
        try:
            lock.acquire()
            break
        except BaseException as exc:
            interrupted = exc
    try:
        yield
    finally:
        lock.release()
    if interrupted is not None:
        raise interrupted


def _close_quietly(conn: Any) -> None:
    """Close a connection we are giving up; its own errors change nothing for us."""
    with suppress(Exception):
        conn.close()
