"""httpcore: a pool timeout that races a freed slot leaves a never-used connection behind.

Contract (docs/CONTRACT.md s.2-3, invariant `capacity`): a blocking pool of N
connections can always hand out N again once every connection is back; a caller that
stops waiting (its timeout) must not take a slot with it.

What httpcore does (checked against httpcore 1.0.9, Python 3.11):
    ConnectionPool.handle_request queues a PoolRequest, then waits in
    ``pool_request.wait_for_connection(timeout=pool_timeout)``.  Another thread that
    frees a slot (a response closed on a connection the server dropped, or a request
    whose connect failed) runs ``_assign_requests_to_connections()``, which may *create*
    a new HTTPConnection for the waiting request and assign it.  If the waiter's
    wait has just timed out, it raises PoolTimeout, and its ``except`` block removes
    the request from the queue, but not the connection created for it.  That
    connection never connects: ``_connection is None`` and ``_connect_failed`` is
    False, so is_idle(), is_closed(), has_expired() and is_available() are all False,
    and no branch of the pool's clean-up loop ever removes it.  It holds its slot for
    the life of the pool.  With max_connections=1, every later request times out.

Bug or design choice:
    A bug, known upstream in its async form: encode/httpcore issue #1093 (open,
    "Cancelling requests under pool contention permanently leaks connection slots"),
    with fixes proposed in pull requests #986, #1035, #1094 and #1099 (all open).  Those
    reports trigger it by cancelling a task; the sync pool has no cancellation, but a
    pool timeout is the same exit at the same point.  The pool timeout is documented as
    the time "to wait for acquiring a connection from the pool", nothing more.

No network: a fake network backend answers every request with an empty keep-alive 200.
Deterministic: the interleaving (the waiter's wait times out, then the other thread
frees the slot before the waiter's handler runs) is produced by wrapping
PoolRequest.wait_for_connection, on one thread; the only waits are pool timeouts of
0.05 s and 0.2 s.

Run:  python findings/httpcore_pool_timeout_orphans_connection.py
Exit 0 and "REPRODUCED: ..." if the pool can no longer hand out its one connection;
exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import sys

import httpcore
from httpcore._sync import connection_pool

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stream(httpcore.NetworkStream):
    def __init__(self):
        self.closed = False  # the server dropped it (or we closed it)
        self.owed = 0

    def write(self, buffer, timeout=None):
        self.owed += 1

    def read(self, max_bytes, timeout=None):
        if self.closed or not self.owed:
            return b""
        self.owed -= 1
        return RESPONSE

    def close(self):
        self.closed = True

    def get_extra_info(self, info):
        return self.closed if info == "is_readable" else None


class Backend(httpcore.NetworkBackend):
    def __init__(self):
        self.streams = []

    def connect_tcp(self, host, port, timeout=None, local_address=None,
                    socket_options=None):
        self.streams.append(Stream())
        return self.streams[-1]


def request(pool, timeout):
    response = pool.handle_request(httpcore.Request(
        "GET", "http://127.0.0.1:80/", headers=[(b"Host", b"127.0.0.1")],
        extensions={"timeout": {"pool": timeout}}))
    response.read()
    return response


def main():
    print(f"httpcore {httpcore.__version__}")
    backend = Backend()
    pool = httpcore.ConnectionPool(max_connections=1, network_backend=backend)
    held = request(pool, None)  # A holds the only connection
    backend.streams[0].close()  # ... and the server drops it while A holds it

    real_wait = connection_pool.PoolRequest.wait_for_connection

    def wait_then_race(self, timeout=None):
        try:
            return real_wait(self, timeout)
        except httpcore.PoolTimeout:
            # B's wait timed out. Before B's handler takes the pool's lock, A gives its
            # response back: the dropped connection is expired, and a new connection is
            # created for B's request, which is still queued.
            connection_pool.PoolRequest.wait_for_connection = real_wait
            held.close()
            raise

    connection_pool.PoolRequest.wait_for_connection = wait_then_race
    try:
        request(pool, 0.05)  # B
    except httpcore.PoolTimeout:
        print("B: PoolTimeout, as it should (its wait had timed out)")
    print(f"after A returned and B left: {pool!r}")
    print(f"  connections: {pool.connections}")

    try:
        request(pool, 0.2).close()  # C: nothing is checked out, the pool should serve it
    except httpcore.PoolTimeout:
        print("REPRODUCED: nothing is checked out, yet a request times out: the slot is "
              f"held by a connection that never connected ({pool.connections})")
        return 0
    print("NOT REPRODUCED: the pool served a new request after the race")
    return 1


if __name__ == "__main__":
    sys.exit(main())
