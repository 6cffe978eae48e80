"""redis-py: a BlockingConnectionPool slot is lost for good when constructing a
connection fails.

Contract (docs/CONTRACT.md s.2-3): whatever the connection factory raises, the slot
reserved for that connection is given back (invariant `capacity`): a pool of
``maxsize`` connections can always hand out ``maxsize`` once the failure has passed.

What redis-py does (checked against redis 8.1.0, Python 3.11):
    BlockingConnectionPool.get_connection() takes a ``None`` placeholder off its queue
    (a free slot), then calls ``make_connection()``, which constructs
    ``connection_class(**connection_kwargs)``. If the constructor raises (bad options,
    an SSL context that cannot be set up, a KeyboardInterrupt), the ``finally`` around it
    releases only the maintenance lock: the placeholder is never put back. Each such
    failure shrinks the pool by one, for the life of the pool; with max_connections=1
    every later get_connection() waits out its timeout and raises "No connection
    available." A failure in ``connect()`` is handled (the connection is released);
    only construction is not.

Bug or design choice:
    A bug, reported upstream: redis-py pull request #4298 (open), "Do not lose pool
    capacity when connection construction fails", which describes this very path in
    ``BlockingConnectionPool.get_connection``. The docstring of get_connection says
    only: "Get a connection, blocking for ``self.timeout`` until a connection is
    available from the pool." poolcheck's redis adapter fails the construction of its
    fake connection where the factory is armed, and `sequential/capacity` and
    `stress/capacity` report it.

No server: a fake connection class whose constructor fails once. Single-threaded and
deterministic; the pool timeout (0.2 s) is the only wait.

Run:  python findings/redis_construct_loses_slot.py
Exit 0 and "REPRODUCED: ..." if the slot is lost; exit 1 and "NOT REPRODUCED: ..."
otherwise.
"""
import os
import sys
from typing import ClassVar

import redis
from redis.connection import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError


class FailsOnce:
    """Stands in for redis.Connection; its first construction fails."""

    constructed: ClassVar[int] = 0

    def __init__(self, **kwargs):
        FailsOnce.constructed += 1
        if FailsOnce.constructed == 1:
            raise ValueError("bad connection options (the first construction fails)")
        self.pid = os.getpid()

    def connect(self, *args, **kwargs):
        pass

    def disconnect(self, *args, **kwargs):
        pass

    def can_read(self, *args, **kwargs):
        return False

    def should_reconnect(self):
        return False

    def is_ready_for_command(self):
        return True


def main() -> int:
    pool = BlockingConnectionPool(max_connections=1, timeout=0.2, connection_class=FailsOnce)
    try:
        pool.get_connection()
    except ValueError as exc:
        print(f"first get_connection(): {type(exc).__name__}: {exc}")
    else:
        print(f"NOT REPRODUCED: the first construction did not fail (redis {redis.__version__})")
        return 1
    try:
        conn = pool.get_connection()  # the failure has passed: construction now works
    except RedisConnectionError as exc:
        print(f"second get_connection(): {type(exc).__name__}: {exc}")
        print(f"REPRODUCED: redis {redis.__version__}: a failed construction lost the only "
              "slot of BlockingConnectionPool(max_connections=1); the pool can never hand "
              "out a connection again")
        return 0
    pool.release(conn)
    print(f"NOT REPRODUCED: redis {redis.__version__} gave the slot back after the failed "
          "construction")
    return 1


if __name__ == "__main__":
    sys.exit(main())
