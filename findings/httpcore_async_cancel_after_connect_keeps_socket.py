"""httpcore (asyncio): a request cancelled the moment its new connection is established
leaves that connection open in the pool, holding its slot and its socket for ever.

Contract (docs/CONTRACT.md s.3, invariants `interrupt-safe` and `capacity`): a
cancellation delivered to a caller inside get_conn (``task.cancel()``, at any await,
the connection factory's included) comes out of that call and leaves every invariant
holding: no slot lost, the pool usable.  The interrupted call may have made a
connection, if it closes it and gives its slot back.

What httpcore does (checked against httpcore 1.0.9 with anyio 4.16, Python 3.11):
    A request with nothing idle gets a new AsyncHTTPConnection, which connects in
    ``AsyncHTTPConnection.handle_async_request`` (inside its ``try:``, whose ``except
    BaseException`` marks a failed connect).  Once connected, it hands the request to its
    new AsyncHTTP11Connection, whose ``handle_async_request`` first takes
    ``self._state_lock`` (_async/http11.py line 72) to move from NEW to ACTIVE.  That
    anyio Lock's acquire passes through the event loop (a checkpoint), outside both
    ``try:`` blocks.  A cancellation that arrives there (an ``asyncio.timeout`` or
    ``wait_for`` expiring just as the TCP handshake completes, a task group cancelling
    its tasks) leaves the HTTP/1.1 connection in state NEW with its socket open: not
    idle, not closed, not expired, not available.  The pool's ``except BaseException``
    removes the request, but no branch of its clean-up loop ever removes the connection.
    It holds a slot and a file descriptor for the life of the pool (until ``aclose()``).
    With max_connections=1, every later request raises PoolTimeout.  No contention is
    needed: one request, cancelled at the right await, is enough.

Bug or design choice:
    A bug, known upstream as the second shape of encode/httpcore issue #1093 (open,
    "Cancelling requests under pool contention permanently leaks connection slots"): a
    comment on pull request #1099 (open, "Reclaim connections orphaned by a cancelled
    request") describes this very delivery point, an "HTTP/1.1 NEW entry holding an open
    socket" left by a cancellation at the ``_state_lock`` acquire; #1094 (open) would
    reclaim any non-idle connection no request owns.  ``max_connections`` is documented as
    "The maximum number of concurrent HTTP connections that the pool should allow. Any
    attempt to send a request on a pool that would exceed this amount will block until a
    connection is available." -- nothing says a cancelled request keeps one.  Found by
    poolcheck's controlled event loop (``--adapter httpcore-async``), cancelling the
    waiter of the program ``get; discard | interrupt, wait`` (tests/test_adapters.py).

No network: a fake network backend answers every request with an empty keep-alive 200.
Deterministic, no patching: the backend's ``connect_tcp`` sets an asyncio.Event as it
returns the new stream; the main task, woken by it, cancels the request's task, which by
then has gone on (without awaiting) to the state lock's checkpoint, where the
cancellation lands.  The only wait is a pool timeout of 0.2 s.

Run:  python findings/httpcore_async_cancel_after_connect_keeps_socket.py
Exit 0 and "REPRODUCED: ..." if the pool can no longer hand out its one connection while
the cancelled request's socket stays open; exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import asyncio
import sys

import httpcore

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stream(httpcore.AsyncNetworkStream):
    def __init__(self):
        self.closed = False
        self.owed = 0

    async def write(self, buffer, timeout=None):
        self.owed += 1

    async def read(self, max_bytes, timeout=None):
        if self.closed or not self.owed:
            return b""
        self.owed -= 1
        return RESPONSE

    async def aclose(self):
        self.closed = True

    def get_extra_info(self, info):
        return self.closed if info == "is_readable" else None


class Backend(httpcore.AsyncNetworkBackend):
    def __init__(self):
        self.streams = []
        self.connected = asyncio.Event()

    async def connect_tcp(self, host, port, timeout=None, local_address=None,
                          socket_options=None):
        self.streams.append(Stream())
        self.connected.set()  # the TCP handshake is done
        return self.streams[-1]


def new_request(timeout):
    return httpcore.Request("GET", "http://127.0.0.1:80/", headers=[(b"Host", b"127.0.0.1")],
                            extensions={"timeout": {"pool": timeout}})


async def send(pool, request):
    response = await pool.handle_async_request(request)
    await response.aread()
    return response


async def main():
    print(f"httpcore {httpcore.__version__}")
    backend = Backend()
    pool = httpcore.AsyncConnectionPool(max_connections=1, network_backend=backend)

    a_task = asyncio.create_task(send(pool, new_request(None)))  # A: a new connection
    await backend.connected.wait()
    a_task.cancel()  # A gives up just as its connection is established
    try:
        await a_task
    except asyncio.CancelledError:
        print("A: CancelledError, as it should (it was cancelled)")
    else:
        print("NOT REPRODUCED: the cancellation arrived too late (A got its response)")
        return 1
    print(f"after A left: {pool!r}")
    print(f"  connections: {pool.connections}")
    print(f"  A's socket is {'closed' if backend.streams[0].closed else 'still open'}")

    try:
        await (await send(pool, new_request(0.2))).aclose()  # B: nothing is checked out
    except httpcore.PoolTimeout:
        open_ = not backend.streams[0].closed
        print("REPRODUCED: nothing is checked out, yet a request times out: the slot is "
              f"held by the cancelled request's connection ({pool.connections})"
              + (", whose socket is still open" if open_ else ""))
        return 0
    print("NOT REPRODUCED: the pool served a new request after the cancellation")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
