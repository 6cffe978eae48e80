"""The real ``pool.Pool`` against a real loopback HTTP/1.1 server (``tests.server``).

The server counts the connections it accepts and the requests it receives, so reuse and
"nothing was sent" are seen from the other end of the socket, not from the pool's own
bookkeeping. Slots are checked the way the contract's ``capacity`` invariant is: a
``block=True`` pool must still hand out exactly ``maxsize`` connections at once.
"""

from __future__ import annotations

import http.client
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import pytest
from poolcheck.pool import (
    ClosedPoolError,
    EmptyPoolError,
    HostMismatchError,
    Pool,
    Response,
    StreamingResponse,
)

from tests.server import (
    TRUNCATED_SENT,
    Handler,
    LocalServer,
    big_body,
)

pytestmark = pytest.mark.timeout(30)

WAIT_CAP = 5.0  # seconds; only ever reached when something is broken


class Interrupt(BaseException):
    """Like KeyboardInterrupt: a BaseException that ``except Exception`` lets through."""


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


class Tracker:
    """A connection factory that remembers every connection it made."""

    def __init__(
        self, server: LocalServer, cls: type[HTTPConnection] = HTTPConnection
    ) -> None:
        self.server = server
        self.cls = cls
        self.made: list[HTTPConnection] = []

    def __call__(self) -> HTTPConnection:
        # A socket timeout, so a broken test fails instead of hanging.
        conn = self.cls(self.server.host, self.server.port, timeout=WAIT_CAP)
        self.made.append(conn)
        return conn

    def open(self) -> list[HTTPConnection]:
        return [conn for conn in self.made if conn.sock is not None]

    def close_all(self) -> None:
        for conn in self.made:
            conn.close()


@pytest.fixture
def tracker(server: LocalServer) -> Iterator[Tracker]:
    made = Tracker(server)
    yield made
    made.close_all()  # those a test left checked out; the pool closes only what it holds


@pytest.fixture
def pools() -> Iterator[list[Pool]]:
    """Pools to close after the test, whatever happened in it."""
    made: list[Pool] = []
    yield made
    for p in made:
        p.close()


def new_pool(server: LocalServer, pools: list[Pool], **kwargs: Any) -> Pool:
    p = Pool(server.host, server.port, **kwargs)
    pools.append(p)
    return p


def assert_capacity(p: Pool, n: int) -> list[Any]:
    """Exactly ``n`` connections can be checked out at once (block=True), then none."""
    conns = [p.get_conn(timeout=0) for _ in range(n)]
    with pytest.raises(EmptyPoolError):
        p.get_conn(timeout=0)
    return conns


def waiting(p: Pool) -> int:
    """Threads inside ``get_conn``'s ``Condition.wait`` (a private detail of the pool)."""
    return len(p._cond._waiters)  # type: ignore[attr-defined]


def wait_until(predicate: Any, what: str) -> None:
    """Poll without sleeping as synchronisation: short bounded steps, a hard cap."""
    step = threading.Event()
    deadline = time.monotonic() + WAIT_CAP
    while time.monotonic() < deadline:
        if predicate():
            return
        step.wait(0.001)
    pytest.fail(f"gave up after {WAIT_CAP} s waiting until {what}")


# -- plain requests, keep-alive ----------------------------------------------------------


def test_request_returns_status_headers_and_data(server, pools):
    p = new_pool(server, pools)
    r = p.request("GET", "/ok")
    assert isinstance(r, Response)
    assert r.status == 200
    assert r.headers["Content-Length"] == "3"
    assert r.data == b"ok\n"


def test_keep_alive_reuses_a_single_connection(server, pools):
    accepted, requests = server.accepted, server.requests
    p = new_pool(server, pools, maxsize=1)  # the default factory: plain HTTPConnection
    for _ in range(20):
        r = p.request("GET", "/ok")
        assert (r.status, r.data) == (200, b"ok\n")
    assert server.accepted - accepted == 1
    assert p.num_connections == 1
    assert p.num_requests == 20
    assert server.requests - requests == 20


def test_server_answers_in_one_write_with_nodelay():
    """Why pooled requests are fast: no response is split into two small writes, and
    TCP_NODELAY is on, so Nagle + delayed ACK cannot stall a request for ~40 ms."""
    nodelay: list[int] = []
    writes: list[str] = []

    class Counting:
        def __init__(self, inner: Any, handler: Handler) -> None:
            self._inner, self._handler = inner, handler

        def write(self, data: bytes) -> int:
            writes.append(self._handler.path)  # before the client can see the bytes
            return int(self._inner.write(data))

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    class Observed(Handler):
        def setup(self) -> None:
            super().setup()
            nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.wfile = Counting(self.wfile, self)  # type: ignore[assignment]

    paths = ["/ok", "/echo", "/big?n=100000", "/slow?ms=1", "/close", "/truncated"]
    with LocalServer(Observed) as srv, Pool(srv.host, srv.port) as p:
        p.request("POST", "/echo", body=b"x" * 5000)
        for path in paths:
            try:
                p.request("GET", path)
            except http.client.IncompleteRead:
                assert path == "/truncated"
    assert nodelay and all(nodelay), nodelay
    assert writes == ["/echo", *paths]


def test_post_body_is_echoed_with_method(server, pools):
    p = new_pool(server, pools)
    body = bytes(range(256)) * 20
    r = p.request("POST", "/echo", body=body, headers={"Content-Type": "application/x-test"})
    assert r.status == 200
    assert r.data == body
    assert r.headers["X-Method"] == "POST"
    r = p.request("GET", "/echo")
    assert (r.data, r.headers["X-Method"]) == (b"", "GET")


def test_absolute_url_on_the_same_host(server, pools):
    p = new_pool(server, pools)
    assert p.request("GET", server.url("/ok")).data == b"ok\n"
    assert p.request("GET", server.url("/big?n=7")).data == big_body(7)  # query kept
    upper = f"HTTP://{server.host}:{server.port}/ok"
    assert p.request("GET", upper).data == b"ok\n"
    assert p.num_connections == 1


@pytest.mark.parametrize(
    "template",
    [
        "http://localhost:{port}/ok",
        "http://127.0.0.2:{port}/ok",
        "http://{host}:{other}/ok",
        "http://{host}/ok",
        "https://{host}:{port}/ok",
    ],
    ids=["other-host-name", "other-address", "other-port", "default-port", "https"],
)
def test_url_for_another_origin_raises_before_sending(server, pools, tracker, template):
    url = template.format(host=server.host, port=server.port, other=server.port % 65535 + 1)
    accepted, requests = server.accepted, server.requests
    p = new_pool(server, pools, maxsize=2, block=True, timeout=0, connection_factory=tracker)
    with pytest.raises(HostMismatchError) as info:
        p.request("GET", url)
    assert isinstance(info.value, ValueError)
    assert (server.accepted, server.requests) == (accepted, requests)
    assert tracker.made == []
    assert p.num_requests == 0
    assert_capacity(p, 2)  # nothing was checked out and kept


# -- responses that end the connection ---------------------------------------------------


def test_connection_close_response_is_not_reused(server, pools, tracker):
    accepted = server.accepted
    p = new_pool(server, pools, maxsize=1, block=True, timeout=1, connection_factory=tracker)
    r = p.request("GET", "/close")
    assert (r.status, r.data) == (200, b"closing\n")
    assert r.headers["Connection"] == "close"
    assert tracker.open() == []
    assert p.request("GET", "/ok").data == b"ok\n"  # no slot lost, or this times out
    assert p.num_connections == 2
    assert len(tracker.made) == 2  # a new connection, not the old one reconnecting
    assert server.accepted - accepted == 2
    (idle,) = assert_capacity(p, 1)
    assert idle is tracker.made[1]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/truncated", http.client.IncompleteRead),
        ("/badstatus", http.client.BadStatusLine),
        ("/drop", http.client.RemoteDisconnected),
    ],
    ids=["truncated", "badstatus", "drop"],
)
@pytest.mark.parametrize("reused", [False, True], ids=["fresh", "reused"])
def test_broken_response_closes_connection_and_frees_slot(
    server, pools, tracker, path, error, reused
):
    accepted = server.accepted
    p = new_pool(server, pools, maxsize=1, block=True, timeout=1, connection_factory=tracker)
    if reused:
        p.request("GET", "/ok")
    with pytest.raises(error) as info:
        p.request("GET", path)
    assert info.type is error
    assert tracker.open() == []
    assert p.request("GET", "/ok").data == b"ok\n"
    assert len(tracker.made) == 2
    assert p.num_connections == 2
    assert server.accepted - accepted == 2
    assert tracker.made[1].sock is not None  # the new one is alive and idle in the pool
    (idle,) = assert_capacity(p, 1)
    assert idle is tracker.made[1]


def test_truncated_stream_closes_connection_and_frees_slot(server, pools, tracker):
    p = new_pool(server, pools, maxsize=1, block=True, timeout=1, connection_factory=tracker)
    r = p.request("GET", "/truncated", preload_content=False)
    assert isinstance(r, StreamingResponse)
    with pytest.raises(http.client.IncompleteRead) as info:
        r.read()
    assert info.value.partial == TRUNCATED_SENT
    r.close()  # after the failure: must not give the slot back a second time
    assert tracker.open() == []
    (conn,) = assert_capacity(p, 1)
    assert conn is not tracker.made[0]


# -- BaseException that is not an Exception --------------------------------------------


def test_interrupt_from_factory_loses_no_slot(server, pools, tracker):
    calls: list[None] = []

    def factory() -> HTTPConnection:
        calls.append(None)
        if len(calls) == 1:
            raise Interrupt
        conn: HTTPConnection = tracker()
        return conn

    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=factory)
    with pytest.raises(Interrupt):
        p.request("GET", "/ok")
    assert p.num_connections == 0
    assert p.request("GET", "/ok").data == b"ok\n"  # timeout=0: the slot must be free
    assert p.num_connections == 1
    assert_capacity(p, 1)


class InterruptingResponse(http.client.HTTPResponse):
    def read(self, amt: int | None = None) -> bytes:
        raise Interrupt


class InterruptingConnection(HTTPConnection):
    """Raises ``Interrupt`` at ``where`` (once the request is on the wire), first time only."""

    where = ""

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        if self.where == "request":
            self.where = ""
            raise Interrupt

    def getresponse(self) -> http.client.HTTPResponse:
        if self.where == "read":
            self.response_class = InterruptingResponse
        response = super().getresponse()
        self.response_class = http.client.HTTPResponse
        if self.where == "getresponse":
            self.where = ""
            raise Interrupt
        self.where = ""
        return response


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "stream"])
@pytest.mark.parametrize("where", ["request", "getresponse", "read"])
def test_interrupt_mid_request_closes_connection_and_loses_no_slot(
    server, pools, tracker, where, preload
):
    tracker.cls = InterruptingConnection

    def factory() -> InterruptingConnection:
        conn = tracker()
        assert isinstance(conn, InterruptingConnection)
        if len(tracker.made) == 1:
            conn.where = where
        return conn

    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=factory)
    with pytest.raises(Interrupt):
        r = p.request("GET", "/big?n=5000", preload_content=preload)
        assert isinstance(r, StreamingResponse)
        r.read()
    assert tracker.made[0].sock is None  # the request was sent: it had been open
    assert tracker.open() == []
    assert p.request("GET", "/ok").data == b"ok\n"  # timeout=0: the slot must be free
    assert len(tracker.made) == 2
    (idle,) = assert_capacity(p, 1)
    assert idle is tracker.made[1]


# -- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["read", "read1000", "with"])
def test_stream_read_to_the_end_returns_connection_once(server, pools, tracker, how):
    accepted = server.accepted
    p = new_pool(server, pools, maxsize=2, block=True, timeout=0, connection_factory=tracker)
    r = p.request("GET", "/big?n=100000", preload_content=False)
    assert isinstance(r, StreamingResponse)
    assert r.status == 200
    assert r.headers["Content-Length"] == "100000"
    if how == "read":
        data = r.read()
    elif how == "read1000":
        chunks = []
        while chunk := r.read(1000):
            assert len(chunk) <= 1000
            chunks.append(chunk)
        data = b"".join(chunks)
    else:
        with r as entered:
            assert entered is r
            data = r.read()
    assert data == big_body(100_000)
    # Back in the pool once the body has been read: no close() needed (except by `with`).
    conn = p.get_conn(timeout=0)
    assert conn is tracker.made[0]
    p.put_conn(conn)
    # Reads after the end, and closes, must not give it back again.
    assert r.read() == b""
    assert r.read(10) == b""
    r.close()
    r.close()
    assert p.request("GET", "/ok").data == b"ok\n"
    assert server.accepted - accepted == 1  # the /ok reused the streamed connection
    assert p.num_connections == 1
    # Given back exactly once: a second checkout must be a new connection, not it again.
    first, second = assert_capacity(p, 2)
    assert first is tracker.made[0]
    assert second is not first


@pytest.mark.parametrize("how", ["close", "with"])
def test_stream_closed_early_closes_connection_and_frees_slot_once(server, pools, tracker, how):
    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=tracker)
    r = p.request("GET", "/big?n=100000", preload_content=False)
    assert isinstance(r, StreamingResponse)
    if how == "with":
        with r:
            assert r.read(1000) == big_body(1000)
    else:
        assert r.read(1000) == big_body(1000)
        r.close()
    assert tracker.open() == []  # unread bytes: the connection must not be reused
    (conn,) = assert_capacity(p, 1)  # the slot came back
    assert conn is not tracker.made[0]
    p.put_conn(conn)
    # Closing again and reading after the close must not give the slot back again.
    r.close()
    assert r.read() == b""
    assert r.read(10) == b""
    r.close()
    (again,) = assert_capacity(p, 1)
    assert again is conn
    assert tracker.open() == []


def test_stream_read_zero_bytes_is_not_the_end(server, pools, tracker):
    """``read(0)`` asks for nothing; it must not end the stream or drop the connection."""
    accepted = server.accepted
    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=tracker)
    r = p.request("GET", "/big?n=5000", preload_content=False)
    assert isinstance(r, StreamingResponse)
    assert r.read(0) == b""
    assert r.read() == big_body(5000)
    assert p.request("GET", "/ok").data == b"ok\n"
    assert server.accepted - accepted == 1


# -- pool.connection() -------------------------------------------------------------------


def _use(conn: HTTPConnection) -> None:
    conn.request("GET", "/ok")
    assert conn.getresponse().read() == b"ok\n"


def test_connection_context_manager_returns_connection(server, pools, tracker):
    accepted = server.accepted
    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=tracker)
    with p.connection() as conn:
        _use(conn)
    with p.connection() as again:
        assert again is conn
        _use(again)
    assert server.accepted - accepted == 1
    (idle,) = assert_capacity(p, 1)
    assert idle is conn


@pytest.mark.parametrize("exc", [RuntimeError, Interrupt])
def test_connection_context_manager_closes_on_exception(server, pools, tracker, exc):
    p = new_pool(server, pools, maxsize=1, block=True, timeout=0, connection_factory=tracker)
    with pytest.raises(exc), p.connection() as conn:
        _use(conn)
        raise exc
    assert conn.sock is None
    assert tracker.open() == []
    (other,) = assert_capacity(p, 1)
    assert other is not conn


# -- closing the pool --------------------------------------------------------------------


def test_with_pool_closes_it(server, tracker):
    with Pool(server.host, server.port, connection_factory=tracker) as p:
        assert p.request("GET", "/ok").data == b"ok\n"
        assert len(tracker.open()) == 1
    assert tracker.open() == []
    with pytest.raises(ClosedPoolError):
        p.get_conn()
    with pytest.raises(ClosedPoolError):
        p.request("GET", "/ok")
    p.close()  # again: harmless
    assert len(tracker.made) == 1


def test_connection_returned_after_close_is_closed(server, tracker):
    p = Pool(server.host, server.port, maxsize=1, block=True, connection_factory=tracker)
    conn = p.get_conn()
    _use(conn)
    p.close()
    assert conn.sock is not None  # checked out: closed only when it comes back
    p.put_conn(conn)
    assert conn.sock is None


def test_close_wakes_a_blocked_get_conn(server, pools, tracker):
    p = new_pool(server, pools, maxsize=1, block=True, timeout=None, connection_factory=tracker)
    held = p.get_conn()
    outcome: list[BaseException | object] = []

    def waiter() -> None:
        try:
            outcome.append(p.get_conn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_until(lambda: waiting(p) or not thread.is_alive(), "the waiter is in get_conn's wait")
    assert thread.is_alive(), outcome  # it was waiting, not done
    p.close()
    thread.join(WAIT_CAP)
    assert not thread.is_alive(), "close() did not wake the waiting get_conn"
    assert len(outcome) == 1
    assert isinstance(outcome[0], ClosedPoolError)
    p.put_conn(held)
    assert tracker.made == [held]


@pytest.mark.parametrize("timeout", [math.inf, 1e12], ids=["inf", "1e12"])
@pytest.mark.parametrize("given_to", ["pool", "get_conn"])
def test_huge_timeout_is_rejected_or_waits(server, pools, timeout, given_to):
    """A timeout the pool accepts must work: an OverflowError from the wait is not allowed.

    Rejecting it up front (ValueError or TypeError) is fine; waiting for ever is fine.
    """
    try:
        p = Pool(server.host, server.port, maxsize=1, block=True,
                 timeout=timeout if given_to == "pool" else None)
    except (ValueError, TypeError):
        return
    pools.append(p)
    held = p.get_conn(timeout=0)
    outcome: list[BaseException | object] = []

    def waiter() -> None:
        try:
            outcome.append(p.get_conn() if given_to == "pool" else p.get_conn(timeout))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    wait_until(lambda: waiting(p) or not thread.is_alive(), "the waiter is in get_conn's wait")
    p.put_conn(held)
    thread.join(WAIT_CAP)
    assert not thread.is_alive()
    if given_to == "get_conn" and isinstance(outcome[0], (ValueError, TypeError)):
        return
    assert outcome == [held]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"maxsize": 0},
        {"maxsize": -1},
        {"maxsize": 1.5},
        {"maxsize": True},
        {"maxsize": "2"},
        {"timeout": -1},
        {"timeout": -0.5},
        {"timeout": math.nan},
        {"port": 0},
        {"port": 70000},
        {"port": "80"},
        {"host": ""},
    ],
    ids=lambda bad: ",".join(f"{key}={value!r}" for key, value in bad.items()),
)
def test_bad_constructor_arguments(server, tracker, bad):
    accepted = server.accepted
    kwargs = {"host": server.host, "port": server.port, "connection_factory": tracker, **bad}
    with pytest.raises((ValueError, TypeError)):
        Pool(**kwargs)
    assert tracker.made == []
    assert server.accepted == accepted


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan], ids=["-1", "-0.001", "nan"])
def test_bad_get_conn_timeout(server, pools, tracker, timeout):
    p = new_pool(server, pools, maxsize=1, block=True, connection_factory=tracker)
    with pytest.raises(ValueError):
        p.get_conn(timeout=timeout)
    assert tracker.made == []
    assert_capacity(p, 1)  # the failed call reserved nothing
