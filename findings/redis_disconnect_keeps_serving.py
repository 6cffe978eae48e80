"""redis-py: BlockingConnectionPool.disconnect()/close() has no closed state and
disconnects connections under their holders.

Contract (docs/CONTRACT.md s.2-3): close() closes every idle connection at once;
connections still checked out are closed *when they are returned*; afterwards
get_conn raises ClosedPoolError (invariant `closed`).  A checked-out connection
belongs to its caller alone (invariant `exclusive`).

What redis-py does (checked against redis 8.1.0, Python 3.11):
    * BlockingConnectionPool.disconnect(inuse_connections=True) -- True is the default
      in this version -- calls ``disconnect()`` on *every* connection in
      ``self._connections``, including one that another caller holds right now.
    * There is no closed flag: ``close()`` (inherited from ConnectionPool) is just
      ``self.disconnect()``.  After disconnect()/close(), get_connection() keeps
      handing out connections (it calls ``connection.connect()`` again), and
      release() puts the returned connection back into the queue.

Bug or design choice:
    Documented design.  ConnectionPool.disconnect(): "If ``inuse_connections`` is
    True, disconnect connections that are currently in use, potentially by other
    threads."  ConnectionPool.close(): "Close the pool, disconnecting all
    connections" -- i.e. "close" means "drop the sockets"; redis-py connections
    reconnect lazily on next use (get_connection() calls connect(); Connection's
    send path connects when there is no socket), so the pool stays usable by design.
    It is simply not the contract's close(): no ClosedPoolError, and in-use
    connections are disconnected under their holders.

No server: a minimal fake connection class providing exactly what
BlockingConnectionPool.get_connection()/release()/disconnect() use in 8.1.0
(``pid``, connect, can_read, disconnect, should_reconnect; accepts **kwargs because
the pool injects e.g. ``himport_registry``).  Single-threaded and deterministic; the
pool timeout (1 s) only guards against an unexpected block.

Run:  python findings/redis_disconnect_keeps_serving.py
Exit 0 and "REPRODUCED: ..." if both behaviours are seen; exit 1 and
"NOT REPRODUCED: ..." otherwise.
"""
import inspect
import os
import sys
import warnings
from typing import ClassVar

import redis
from redis.connection import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError


class FakeConnection:
    """Stands in for redis.Connection; no socket."""

    instances: ClassVar[list["FakeConnection"]] = []

    def __init__(self, **kwargs):
        self.pid = os.getpid()  # ConnectionPool.owns_connection() compares this
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        FakeConnection.instances.append(self)

    def connect(self):
        if not self.connected:
            self.connected = True
            self.connects += 1

    def can_read(self, timeout=0):  # "has stale data?" check in get_connection()
        return False

    def disconnect(self, *args, **kwargs):
        if self.connected:
            self.disconnects += 1
        self.connected = False

    def should_reconnect(self):  # consulted by release()
        return False

    def __repr__(self):
        return (f"<FakeConnection #{FakeConnection.instances.index(self)} "
                f"connected={self.connected} connects={self.connects} "
                f"disconnects={self.disconnects}>")


def try_get(pool):
    try:
        return pool.get_connection(), None
    except RedisConnectionError as e:
        return None, e


def main():
    warnings.simplefilter("ignore", DeprecationWarning)
    print(f"redis {redis.__version__}")
    default = inspect.signature(BlockingConnectionPool.disconnect).parameters[
        "inuse_connections"].default
    print(f"BlockingConnectionPool.disconnect(inuse_connections=...) default: {default}")
    close_is_disconnect = "self.disconnect()" in inspect.getsource(BlockingConnectionPool.close)
    print(f"BlockingConnectionPool.close() just calls self.disconnect(): {close_is_disconnect}")

    pool = BlockingConnectionPool(max_connections=1, timeout=1,
                                  connection_class=FakeConnection)

    # 1. A connection checked out during disconnect() is disconnected under its holder.
    held = pool.get_connection()
    print(f"holder checked out:            {held}")
    pool.disconnect()
    closed_under_holder = not held.connected
    print(f"after pool.disconnect():       {held}  (still checked out by holder)")

    # 2. No closed state: the returned connection goes back into the pool and
    #    get_connection() keeps serving, after disconnect() and after close().
    pool.release(held)
    got1, err1 = try_get(pool)
    print(f"get_connection() after disconnect(): {got1 if got1 else err1}"
          f"{'  (same object, reconnected)' if got1 is held else ''}")
    if got1:
        pool.release(got1)
    pool.close()
    got2, err2 = try_get(pool)
    print(f"get_connection() after close():      {got2 if got2 else err2}")
    if got2:
        pool.release(got2)
    print(f"connections created in total: {len(FakeConnection.instances)}")

    if closed_under_holder and got1 is not None and got2 is not None:
        print("REPRODUCED: redis BlockingConnectionPool.disconnect() (default "
              f"inuse_connections={default}) disconnected a connection its holder still "
              "had checked out, and after disconnect() and close() get_connection() "
              "still hands out a (reconnected) connection instead of raising")
        return 0
    print(f"NOT REPRODUCED: closed_under_holder={closed_under_holder}, "
          f"after disconnect: {got1 or err1}, after close: {got2 or err2}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
