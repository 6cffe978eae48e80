"""httpcore (asyncio): a request cancelled just after it was given a new connection leaves
that connection behind, holding its slot for ever.

Contract (docs/CONTRACT.md s.3, invariants `interrupt-safe` and `capacity`): a
cancellation delivered to a caller while it waits in get_conn (``task.cancel()``, at any
await, whether or not the awaited wake-up has already come) comes out of that call and
leaves every invariant holding: no slot lost, the pool usable.  A blocking pool of N
connections can hand out N again once every connection is back.

What httpcore does (checked against httpcore 1.0.9 with anyio 4.16, Python 3.11):
    AsyncConnectionPool.handle_async_request queues an AsyncPoolRequest, then awaits
    ``pool_request.wait_for_connection(timeout=pool_timeout)``.  Another task that frees
    a slot (here: it closes a response whose connection the server dropped) runs
    ``_assign_requests_to_connections()``, which *creates* a new AsyncHTTPConnection for
    the waiting request, assigns it and sets the request's event: the waiter is woken.
    If the waiter is cancelled before it resumes (an ``asyncio.timeout``/``wait_for``
    expiring, a task group cancelling its tasks), the CancelledError comes out of its
    wait, and its ``except BaseException`` block removes the request from the queue, but
    not the connection created for it.  That connection never connects: ``_connection
    is None`` and ``_connect_failed`` is False, so is_idle(), is_closed(), has_expired()
    and is_available() are all False, and no branch of the pool's clean-up loop ever
    removes it.  It holds its slot for the life of the pool.  With max_connections=1,
    every later request raises PoolTimeout (or, without a pool timeout, waits for ever).

Bug or design choice:
    A bug, known upstream: encode/httpcore issue #1093 (open), "Cancelling requests under
    pool contention permanently leaks connection slots (AsyncConnectionPool ->
    PoolTimeout)", which names it the mechanism behind #658 and #830; fixes are proposed
    in pull requests #986, #1035, #1094 and #1099 (all open).  The pool documents
    ``max_connections`` as "The maximum number of concurrent HTTP connections that the
    pool should allow. Any attempt to send a request on a pool that would exceed this
    amount will block until a connection is available." -- nothing says a cancelled
    request can keep one.  Found by poolcheck's controlled event loop (``--adapter
    httpcore-async``), cancelling the waiter of the program ``get; discard | interrupt,
    wait`` (tests/test_adapters.py); the same orphan through a pool timeout instead of a
    cancellation is findings/httpcore_pool_timeout_orphans_connection.py.

No network: a fake network backend answers every request with an empty keep-alive 200.
Deterministic: the cancellation is delivered by wrapping
AsyncPoolRequest.assign_to_connection so that, the moment the waiter's request is given
its new connection, the waiting task is cancelled (woken, not yet resumed: where asyncio
delivers a cancellation that races a wake-up).  The only wait is a pool timeout of 0.2 s.

Run:  python findings/httpcore_async_cancel_orphans_connection.py
Exit 0 and "REPRODUCED: ..." if the pool can no longer hand out its one connection;
exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import asyncio
import sys

import httpcore
from httpcore._async import connection_pool

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stream(httpcore.AsyncNetworkStream):
    def __init__(self):
        self.closed = False  # the server dropped it (or we closed it)
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

    async def connect_tcp(self, host, port, timeout=None, local_address=None,
                          socket_options=None):
        self.streams.append(Stream())
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
    held = await send(pool, new_request(None))  # A holds the only connection
    backend.streams[0].closed = True  # ... and the server drops it while A holds it

    b_request = new_request(None)
    b_task = asyncio.create_task(send(pool, b_request))  # B waits for a connection
    for _ in range(100):
        await asyncio.sleep(0)
        if "1 queued" in repr(pool):
            break
    print(f"B waits: {pool!r}")

    real_assign = connection_pool.AsyncPoolRequest.assign_to_connection

    def assign_then_cancel(self, connection):
        real_assign(self, connection)
        if self.request is b_request and connection is not None:
            # B has just been given a new connection and woken; before it resumes, its
            # task is cancelled (a timeout, a task group): the wake-up and the
            # cancellation race, as they do under contention.
            connection_pool.AsyncPoolRequest.assign_to_connection = real_assign
            b_task.cancel()

    connection_pool.AsyncPoolRequest.assign_to_connection = assign_then_cancel
    try:
        await held.aclose()  # A gives its response back: the dropped connection expires
        try:
            await b_task
        except asyncio.CancelledError:
            print("B: CancelledError, as it should (it was cancelled)")
    finally:
        connection_pool.AsyncPoolRequest.assign_to_connection = real_assign
    print(f"after A returned and B left: {pool!r}")
    print(f"  connections: {pool.connections}")

    try:
        await (await send(pool, new_request(0.2))).aclose()  # C: nothing is checked out
    except httpcore.PoolTimeout:
        print("REPRODUCED: nothing is checked out, yet a request times out: the slot is "
              f"held by a connection that never connected ({pool.connections})")
        return 0
    print("NOT REPRODUCED: the pool served a new request after the cancellation")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
