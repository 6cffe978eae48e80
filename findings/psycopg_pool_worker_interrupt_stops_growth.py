"""psycopg_pool: a BaseException while a worker connects kills that worker and leaves the
pool unable to grow, for good.

Contract (docs/CONTRACT.md s.2-3): whatever the connection factory raises, the slot
reserved for that connection is given back (invariant `capacity`).

What psycopg_pool does (checked against psycopg_pool 3.3.3, psycopg 3.3.9, Python 3.11):
    ConnectionPool makes connections in its worker threads. A getconn() that finds
    nothing idle queues itself and calls ``_maybe_grow_pool()``: ``_nconns += 1``,
    ``_growing = True``, and an ``AddConnection`` task for a worker. The worker's
    ``_add_connection`` handles ``Exception`` from ``_connect()`` (it retries with a
    backoff, and when it gives up it undoes ``_nconns`` and ``_growing``); the worker
    loop also catches ``Exception`` only. A BaseException (``SystemExit`` from a
    ``configure`` callback, a ``gevent.Timeout``, an interrupt) escapes both: the worker
    thread dies, ``_nconns`` keeps the slot and ``_growing`` stays True, so
    ``_maybe_grow_pool()`` never adds a connection again. With ``min_size=0,
    max_size=1`` every later getconn() raises PoolTimeout.

Bug or design choice:
    A fragility rather than a bug seen in practice: in a sync program, KeyboardInterrupt
    is delivered to the main thread, never to a pool worker, so only code that raises a
    BaseException itself inside connect or configure reaches it. Documented nowhere;
    the pool's own ``getconn`` path is careful with BaseException
    (``_getconn_with_check_loop`` returns the connection before re-raising). poolcheck
    injects ``Interrupted`` (a BaseException) at the factory, which psycopg_pool calls in
    a worker, and `stress/capacity` reports the lost growth.

No server: a fake connection class whose first connect() raises KeyboardInterrupt. The
only waits are the two pool timeouts (0.3 s each) and the pool's close().

Run:  python findings/psycopg_pool_worker_interrupt_stops_growth.py
Exit 0 and "REPRODUCED: ..." if the pool can no longer hand out a connection; exit 1
and "NOT REPRODUCED: ..." otherwise.
"""
import sys
import threading

import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout


class PgConn:
    transaction_status = TransactionStatus.IDLE


class FakeConnection:
    """What ConnectionPool calls of its connection_class and of its connections."""

    connects = 0

    def __init__(self):
        self.pgconn, self.closed, self.autocommit, self._pool = PgConn(), False, False, None

    @classmethod
    def connect(cls, conninfo="", **kwargs):
        cls.connects += 1
        if cls.connects == 1:
            raise KeyboardInterrupt("interrupted while connecting")
        return cls()

    def close(self):
        self.closed = True


def main() -> int:
    threading.excepthook = lambda args: print(
        f"worker {args.thread.name} died: {args.exc_type.__name__}: {args.exc_value}")
    pool = ConnectionPool("", connection_class=FakeConnection, min_size=0, max_size=1,
                          timeout=0.3, open=True)
    try:
        for attempt in (1, 2):
            try:
                conn = pool.getconn()
            except PoolTimeout as exc:
                print(f"getconn() #{attempt}: PoolTimeout: {exc}")
            else:
                pool.putconn(conn)
                print(f"NOT REPRODUCED: psycopg_pool {psycopg_pool.__version__} handed out "
                      f"a connection on attempt {attempt}")
                return 1
        print(f"state: _nconns={pool._nconns}, _growing={pool._growing}, "
              f"connect() called {FakeConnection.connects} time(s)")
        if FakeConnection.connects == 1:
            print(f"REPRODUCED: psycopg_pool {psycopg_pool.__version__}: after one "
                  "interrupted connect, ConnectionPool(min_size=0, max_size=1) never "
                  "connects again")
            return 0
        print("NOT REPRODUCED: the pool tried to connect again")
        return 1
    finally:
        pool.close()


if __name__ == "__main__":
    sys.exit(main())
