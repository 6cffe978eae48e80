"""DBUtils: a PooledDB slot is lost for good when returning a broken connection is
interrupted while DBUtils reconnects it.

Contract (docs/CONTRACT.md s.2-3): returning a connection (``put_conn``, here the pooled
connection's ``close()``) gives its slot back, whatever happens (invariant `capacity`);
``put_conn`` raises nothing (`errors`).

What DBUtils does (checked against DBUtils 3.2.0, Python 3.11):
    ``PooledDedicatedDBConnection.close()`` calls ``PooledDB.cache(con)``, which, under
    the pool's lock, resets the returned connection (``con._reset(force=True)``: a
    ``rollback()``, the default ``reset=True``) and only then does
    ``self._connections -= 1``. When the connection broke while it was out (the server
    hung up), the rollback raises the driver's ``InterfaceError``, one of the
    ``failures``; SteadyDB then reconnects on the spot (``self._create()``, the
    creator). If that reconnect raises a BaseException (a ``KeyboardInterrupt``, a
    ``gevent.Timeout``, ``SystemExit``), SteadyDB's ``except Exception: pass`` and
    ``_reset``'s ``suppress(Exception)`` let it through, out of ``cache()``: the
    decrement is skipped. The pool counts the connection as still checked out, for the
    life of the pool. With ``maxconnections=1, blocking=False`` every later
    ``connection()`` raises ``TooManyConnectionsError``; with ``blocking=True`` it waits
    for ever. An ``Exception`` from the reconnect is swallowed and loses nothing.

Bug or design choice:
    Looks like a bug (an unguarded path): nothing in PooledDB's documentation says a
    failed return can shrink the pool, and ``connection()`` already takes care not to
    count a connection whose creation raised. A ``try/finally`` around the reset in
    ``cache()`` would fix it. poolcheck's dbutils adapter reaches it with
    ``put_conn(None)`` (the checker's "my connection broke, I closed it") followed by an
    armed ``Interrupted`` (a BaseException): `sequential/errors`, `stress/errors`,
    `stress/capacity`.

No database: a fake DB-API 2 module whose connections raise InterfaceError once closed,
as drivers do, and whose connect() can be armed to raise KeyboardInterrupt.
Single-threaded and deterministic, no waiting.

Run:  python findings/dbutils_return_interrupt_loses_slot.py
Exit 0 and "REPRODUCED: ..." if the slot is lost; exit 1 and "NOT REPRODUCED: ..."
otherwise.
"""
import sys

import dbutils
from dbutils.pooled_db import PooledDB, TooManyConnectionsError


class FakeDriver:
    """A DB-API 2 module: threadsafety 1, the three failure classes, connect()."""

    threadsafety = 1
    apilevel = "2.0"
    paramstyle = "qmark"

    class Error(Exception):
        pass

    class InterfaceError(Error):
        pass

    class OperationalError(Error):
        pass

    class InternalError(Error):
        pass

    interrupt_next_connect = False

    def connect(self):
        if self.interrupt_next_connect:
            self.interrupt_next_connect = False
            raise KeyboardInterrupt("interrupted while reconnecting")
        return FakeConnection(self)


class FakeConnection:
    def __init__(self, driver):
        self.driver, self.closed = driver, False

    def _check(self):
        if self.closed:
            raise self.driver.InterfaceError("connection already closed")

    def rollback(self):
        self._check()

    def commit(self):
        self._check()

    def close(self):
        self.closed = True


def main() -> int:
    driver = FakeDriver()
    pool = PooledDB(creator=driver, mincached=0, maxcached=1, maxshared=0,
                    maxconnections=1, blocking=False)
    pooled = pool.connection()
    pooled.dbapi_connection.close()  # the connection broke while it was out
    driver.interrupt_next_connect = True
    try:
        pooled.close()  # return it: rollback fails, DBUtils reconnects, interrupted
    except KeyboardInterrupt as exc:
        print(f"returning the broken connection: KeyboardInterrupt: {exc}")
    else:
        print(f"NOT REPRODUCED: DBUtils {dbutils.__version__} did not reconnect on return")
        return 1
    try:
        pooled = pool.connection()  # nothing is checked out
    except TooManyConnectionsError:
        print(f"next connection(): TooManyConnectionsError (pool._connections = "
              f"{pool._connections}, idle: {len(pool._idle_cache)})")
        print(f"REPRODUCED: DBUtils {dbutils.__version__}: an interrupted return lost the "
              "only slot of PooledDB(maxconnections=1); with blocking=True every later "
              "connection() would wait for ever")
        return 0
    pooled.close()
    print(f"NOT REPRODUCED: DBUtils {dbutils.__version__} gave the slot back")
    return 1


if __name__ == "__main__":
    sys.exit(main())
