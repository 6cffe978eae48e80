"""SQLAlchemy: QueuePool.dispose() with connections checked out lets the pool exceed pool_size.

Contract (docs/CONTRACT.md s.2-3, invariant `bound`): with a blocking bound of N
(QueuePool pool_size=N, max_overflow=0), never more than N connections exist
(created and not yet closed) at once.

What SQLAlchemy does (checked against SQLAlchemy 2.1.9, Python 3.11):
    QueuePool.dispose() closes only the *idle* connections and then resets the
    counter unconditionally: ``self._overflow = 0 - self.size()`` (pool/impl.py).
    The connections still checked out are forgotten by the counter but stay open, and
    on check-in they are put back into the queue (there is room, because the queue
    was just drained).  The pool then holds them idle AND believes it may create
    pool_size more, so with pool_size=2, max_overflow=0 three (in fact four)
    connections can be checked out and open at the same time.  status() even
    reports a negative checked-out count.

Bug or design choice:
    dispose() leaving checked-out connections open is documented:
        Pool.dispose(): "This method leaves the possibility of checked-out connections
        remaining open, as it only affects connections that are idle in the pool."
    and the supported way to use it, Engine.dispose(), replaces the pool ("A new
    connection pool is created immediately after the old one has been disposed"), so
    the old pool is not normally used again.  Re-using the *same* QueuePool after
    dispose() and going above pool_size is not documented either way; it is a
    consequence of the counter reset.  Verdict: outside documented usage (design:
    dispose = discard), but the silent bound violation on a pool that keeps working
    looks like a bookkeeping bug if the pool is reused.

No database: the creator returns fake DB-API connections that count open instances.
Single-threaded and deterministic; the only wait is the pool's own `timeout` (0.3 s)
used to find where the pool finally blocks.

Run:  python findings/sqlalchemy_dispose_exceeds_pool_size.py
Exit 0 and "REPRODUCED: ..." if more than pool_size fake connections are open at once;
exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import sys

import sqlalchemy
from sqlalchemy import exc
from sqlalchemy.pool import QueuePool

POOL_SIZE = 2
TIMEOUT = 0.3


class FakeDBAPIConnection:
    open_now = 0
    max_open = 0
    created = 0

    def __init__(self):
        self.closed = False
        cls = FakeDBAPIConnection
        cls.created += 1
        cls.open_now += 1
        cls.max_open = max(cls.max_open, cls.open_now)

    def rollback(self):  # called by the pool's reset-on-return
        pass

    def commit(self):
        pass

    def close(self):
        if not self.closed:
            self.closed = True
            FakeDBAPIConnection.open_now -= 1


def reset_counters():
    FakeDBAPIConnection.open_now = FakeDBAPIConnection.max_open = 0
    FakeDBAPIConnection.created = 0


def checkout_until_timeout(pool, limit=10):
    held = []
    for _ in range(limit):
        try:
            held.append(pool.connect())
        except exc.TimeoutError:
            break
    return held


def main():
    print(f"sqlalchemy {sqlalchemy.__version__}")

    # Control: without dispose(), the bound holds.
    reset_counters()
    ctrl = QueuePool(FakeDBAPIConnection, pool_size=POOL_SIZE, max_overflow=0, timeout=TIMEOUT)
    held = checkout_until_timeout(ctrl)
    print(f"control (no dispose): checked out {len(held)} at once, "
          f"open fake connections {FakeDBAPIConnection.open_now}")
    for c in held:
        c.close()
    ctrl.dispose()

    # The scenario.
    reset_counters()
    pool = QueuePool(FakeDBAPIConnection, pool_size=POOL_SIZE, max_overflow=0, timeout=TIMEOUT)
    a, b = pool.connect(), pool.connect()
    print(f"checked out 2:               {pool.status()}")
    pool.dispose()
    print(f"after dispose():             {pool.status()}  "
          f"(open fakes: {FakeDBAPIConnection.open_now})")
    a.close()
    b.close()
    print(f"after checking both back in: {pool.status()}  "
          f"(open fakes: {FakeDBAPIConnection.open_now})")

    three = [pool.connect() for _ in range(3)]
    open_with_three = FakeDBAPIConnection.open_now
    print(f"3 checked out at once:       {pool.status()}  (open fakes: {open_with_three})")

    more = checkout_until_timeout(pool)
    total = len(three) + len(more)
    print(f"kept checking out until TimeoutError: {total} held at once, "
          f"open fakes: {FakeDBAPIConnection.open_now}, created in total: "
          f"{FakeDBAPIConnection.created}; {pool.status()}")
    for c in three + more:
        c.close()

    if open_with_three > POOL_SIZE:
        print(f"REPRODUCED: after dispose() with 2 connections checked out and both "
              f"checked back in, QueuePool(pool_size={POOL_SIZE}, max_overflow=0) had "
              f"{open_with_three} fake connections open at once with 3 checked out "
              f"(up to {FakeDBAPIConnection.max_open} before timing out), more than "
              f"pool_size={POOL_SIZE}")
        return 0
    print(f"NOT REPRODUCED: at most {open_with_three} connections open with 3 checked out")
    return 1


if __name__ == "__main__":
    sys.exit(main())
