"""A loopback HTTP/1.1 keep-alive server for tests and benchmarks.

It runs in-process on 127.0.0.1 with an ephemeral port, so tests need no network and
never collide on a port. It counts the connections it accepts and the requests it
serves, which is how a test proves from the outside that a pool reused a connection.
Some routes misbehave on purpose (truncated body, garbage status line, dropped
connection) to drive a pool's error paths with a real ``http.client``.

Every response goes out in one ``wfile.write`` of status line, headers and body, with
TCP_NODELAY set: a response split over two small writes meets Nagle's algorithm on this
side and delayed ACK on the client's, and each request then stalls for about 40 ms.

Routes (GET and POST; a POST's body is always read, and echoed where it says so):

- ``/ok``: 200, body ``ok\\n`` (a POST gets its own body back), keep-alive.
- ``/echo``: 200, the request body back, the method in the ``X-Method`` header.
- ``/close``: 200 with ``Connection: close``; the server then closes the connection.
- ``/truncated``: ``Content-Length: 100`` but only 10 bytes, then the connection closes.
- ``/badstatus``: a garbage status line, then the connection closes.
- ``/drop``: the connection closes with no answer at all.
- ``/big?n=BYTES``: a body of ``n`` bytes (``big_body(n)``), for streaming.
- ``/slow?ms=N``: 200 after sleeping ``N`` ms (at most 5000) in the handler.

Anything else is 404; a bad query value is 400 (both keep the connection).
"""

from __future__ import annotations

import http.server
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
MAX_SLOW_MS = 5000
MAX_BIG_BYTES = 256 * 1024 * 1024  # one response is built in memory: keep it bounded
TRUNCATED_DECLARED = 100
TRUNCATED_SENT = b"0123456789"
BAD_STATUS_LINE = b"SPAM 42 this is not http\r\n\r\n"

_PATTERN = bytes(range(256)) * 4096  # 1 MiB; not all zeros, so misplaced bytes show


def big_body(n: int) -> bytes:
    """The body ``/big?n=N`` sends: deterministic, so a test can compare it byte for byte."""
    whole, rest = divmod(n, len(_PATTERN))
    return _PATTERN * whole + _PATTERN[:rest]


class ServerStats:
    """Counters the handler threads update; read them from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = 0
        self.requests = 0
        self.errors: list[BaseException] = []

    def connection_accepted(self) -> None:
        with self._lock:
            self.accepted += 1

    def request_received(self) -> None:
        with self._lock:
            self.requests += 1

    def error(self, exc: BaseException | None) -> None:
        if exc is not None:
            with self._lock:
                self.errors.append(exc)


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes one keep-alive connection's requests; see the module docstring."""

    protocol_version = "HTTP/1.1"  # keep-alive by default, so reuse can be observed
    disable_nagle_algorithm = True  # with the single write below: no 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Counted here, before any request is read: once a client has an answer on a
        # connection, that connection has been counted.
        self.server.stats.connection_accepted()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: test output is no place for an access log."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # -- plumbing -------------------------------------------------------------------

    def _dispatch(self) -> None:
        self.server.stats.request_received()
        # Read the whole request body first, even on routes that close: closing a socket
        # with unread input sends RST, and the client would see a reset, not our failure.
        body = self._read_body()
        parts = urlsplit(self.path)
        route = _ROUTES.get(parts.path)
        if route is None:
            self._respond(HTTPStatus.NOT_FOUND, b"not found\n")
            return
        try:
            route(self, body, parse_qs(parts.query))
        except _BadQuery as exc:
            self._respond(HTTPStatus.BAD_REQUEST, f"{exc}\n".encode())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _respond(
        self,
        status: HTTPStatus,
        body: bytes,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
        content_length: int | None = None,
    ) -> None:
        """Send status line, headers and body in ONE write (see the module docstring)."""
        lines = [
            f"{self.protocol_version} {status.value} {status.phrase}",
            f"Content-Length: {len(body) if content_length is None else content_length}",
            "Content-Type: application/octet-stream",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if close:
            lines.append("Connection: close")
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

    # -- routes -----------------------------------------------------------------------

    def _ok(self, body: bytes, query: dict[str, list[str]]) -> None:
        self._respond(HTTPStatus.OK, body if self.command == "POST" else b"ok\n")

    def _echo(self, body: bytes, query: dict[str, list[str]]) -> None:
        self._respond(HTTPStatus.OK, body, headers={"X-Method": self.command})

    def _close(self, body: bytes, query: dict[str, list[str]]) -> None:
        self._respond(HTTPStatus.OK, b"closing\n", close=True)

    def _truncated(self, body: bytes, query: dict[str, list[str]]) -> None:
        self._respond(
            HTTPStatus.OK, TRUNCATED_SENT, content_length=TRUNCATED_DECLARED, close=True
        )

    def _badstatus(self, body: bytes, query: dict[str, list[str]]) -> None:
        self.wfile.write(BAD_STATUS_LINE)
        self.close_connection = True

    def _drop(self, body: bytes, query: dict[str, list[str]]) -> None:
        self.close_connection = True  # finish() and shutdown_request() close the socket

    def _big(self, body: bytes, query: dict[str, list[str]]) -> None:
        n = _int_param(query, "n", 0, MAX_BIG_BYTES)
        self._respond(HTTPStatus.OK, big_body(n))

    def _slow(self, body: bytes, query: dict[str, list[str]]) -> None:
        ms = min(_int_param(query, "ms", 0, None), MAX_SLOW_MS)
        time.sleep(ms / 1000)
        self._respond(HTTPStatus.OK, b"slow\n")


_Route = Callable[[Handler, bytes, dict[str, list[str]]], None]
_ROUTES: dict[str, _Route] = {
    "/ok": Handler._ok,
    "/echo": Handler._echo,
    "/close": Handler._close,
    "/truncated": Handler._truncated,
    "/badstatus": Handler._badstatus,
    "/drop": Handler._drop,
    "/big": Handler._big,
    "/slow": Handler._slow,
}


class _BadQuery(ValueError):
    pass


def _int_param(query: dict[str, list[str]], name: str, low: int, high: int | None) -> int:
    try:
        value = int(query[name][0])
    except (KeyError, ValueError):
        raise _BadQuery(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise _BadQuery(f"{name} must be from {low} to {high}")
    return value


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a client that never hangs up must not keep the process alive
    request_queue_size = 128  # benchmarks open many connections at once

    def __init__(self, handler_class: type[Handler]) -> None:
        self.stats = ServerStats()
        super().__init__((HOST, 0), handler_class)

    def server_bind(self) -> None:
        """Bind without ``HTTPServer``'s ``getfqdn()``: a reverse DNS lookup can take seconds."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        """Keep handler errors (a client that hung up early, say) off stderr, but on record."""
        self.stats.error(sys.exc_info()[1])


class LocalServer:
    """``with LocalServer() as server:`` serves on ``server.url("/ok")`` until the block ends.

    ``handler_class`` may be a subclass of ``Handler``, so a test can observe the server.
    """

    def __init__(self, handler_class: type[Handler] = Handler) -> None:
        self._handler_class = handler_class
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LocalServer:
        self._server = _Server(self._handler_class)
        # A short poll interval, so shutdown() in __exit__ returns quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"LocalServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        self._thread = None

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("LocalServer is not started: use it in a with statement")
        return self._server

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return int(self._running().server_address[1])

    def url(self, path: str = "/") -> str:
        """An absolute URL on this server; ``path`` starts with ``/``."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', not {path!r}")
        return f"http://{self.host}:{self.port}{path}"

    @property
    def stats(self) -> ServerStats:
        return self._running().stats

    @property
    def accepted(self) -> int:
        """Connections accepted so far (counted before their first request is read)."""
        return self.stats.accepted

    @property
    def requests(self) -> int:
        """Requests received so far, counted before they are answered (``/drop`` too)."""
        return self.stats.requests
