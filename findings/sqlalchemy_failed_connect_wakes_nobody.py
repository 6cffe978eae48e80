"""SQLAlchemy: a failed connect frees QueuePool's slot but wakes no caller waiting for it.

Contract (docs/CONTRACT.md s.2-3, invariants `wakeup` and `deadlock-free`): a caller
waiting in get_conn is served as soon as a slot is free; with no timeout it never waits
for ever while a slot is free.

What SQLAlchemy does (checked against SQLAlchemy 2.1.9, Python 3.11):
    QueuePool._do_get (pool/impl.py) with pool_size=1, max_overflow=0: caller A finds the
    queue empty and room in the overflow counter, so it takes the slot
    (``_inc_overflow``) and connects outside any lock. Caller B arrives meanwhile, finds
    the counter at its limit and waits on the queue: ``self._pool.get(True, timeout)``.
    A's connect raises; ``_do_get`` gives the slot back (``_dec_overflow``) and re-raises.
    But the slot is a counter, not an item in the queue: nothing is put into the queue
    and nothing notifies it, so B keeps waiting although the pool is empty and may
    connect again: a new caller would connect at once.

Bug or design choice:
    Looks like a bug (a lost wake-up). Nothing in QueuePool's documentation says a failed
    connect can leave waiters blocked; ``timeout`` is documented as "The number of
    seconds to wait before giving up on returning a connection", i.e. a connection the
    pool cannot give. After the timeout, ``_do_get`` finds the free slot and connects: B
    is served, but only after waiting out the whole pool timeout (30 s by default) for
    nothing; with ``timeout=None`` it never is. Under a database outage that recovers,
    every caller queued behind a failed connect pays that delay.

Found by poolcheck's controlled checks (`controlled/deadlock-free`, an untimed waiter:
``poolcheck check --adapter sqlalchemy --check controlled/deadlock-free``), as the
program ``fail; branch 1: wait; branch 2: get`` with maxsize=1.

No database: the creator returns fake DB-API connections. The interleaving is forced
without sleeps: A's creator waits (Event, 5 s guard) until B is inside the queue's wait,
then raises. B waits with a 2 s pool timeout.

Run:  python findings/sqlalchemy_failed_connect_wakes_nobody.py
Exit 0 and "REPRODUCED: ..." if B waits out its whole pool timeout while no connection
is checked out (and a new caller then connects at once); exit 1 and "NOT REPRODUCED:
..." otherwise.
"""
import sys
import threading
import time

import sqlalchemy
from sqlalchemy import exc
from sqlalchemy.pool import QueuePool

TIMEOUT = 2.0


class FakeDBAPIConnection:
    def rollback(self):  # the pool's reset-on-return
        pass

    def close(self):
        pass


def main() -> int:
    a_connecting, b_waiting = threading.Event(), threading.Event()
    fail_first = [True]

    def creator():
        if fail_first[0]:
            fail_first[0] = False
            a_connecting.set()  # A holds the slot now, connecting outside any lock
            if not b_waiting.wait(5.0):
                raise RuntimeError("B never started waiting")
            raise ConnectionError("the database is down (simulated)")
        return FakeDBAPIConnection()

    pool = QueuePool(creator, pool_size=1, max_overflow=0, timeout=TIMEOUT)
    queue = pool._pool
    real_get = queue.get

    def get(block=True, timeout=None):  # tells us when B is about to wait on the queue
        if block and threading.current_thread().name == "B":
            b_waiting.set()
        return real_get(block, timeout)

    queue.get = get
    outcome = {}

    def caller_a():
        try:
            pool.connect()
        except ConnectionError as err:
            outcome["A"] = f"A's connect failed: {err}"

    def caller_b():
        started = time.monotonic()
        try:
            conn = pool.connect()
            outcome["B"] = ("served", time.monotonic() - started)
            conn.close()
        except exc.TimeoutError:
            outcome["B"] = ("timed out", time.monotonic() - started)

    a = threading.Thread(target=caller_a, name="A")
    a.start()
    a_connecting.wait(5.0)
    b = threading.Thread(target=caller_b, name="B", daemon=True)
    b.start()
    a.join(5.0)
    out_after_a = pool.checkedout()  # A's failure gave the slot back: nothing is out
    b.join(TIMEOUT + 5.0)
    started = time.monotonic()  # the slot was free all along: a new caller connects
    conn = pool.connect()
    fresh = time.monotonic() - started
    conn.close()
    print(f"SQLAlchemy {sqlalchemy.__version__}: {outcome.get('A')}")
    print(f"connections checked out after A's failure: {out_after_a}")
    result = outcome.get("B")
    print(f"B: {result}; a new caller afterwards was served in {fresh:.3f} s")
    if result is not None and result[1] >= 0.9 * TIMEOUT and out_after_a == 0 and fresh < 0.5:
        print(f"REPRODUCED: B waited its whole pool timeout ({result[1]:.1f} s; then "
              f"{result[0]}) while no connection was checked out: A's failed connect freed "
              "the slot and woke nobody (with no timeout, B would wait for ever)")
        return 0
    print("NOT REPRODUCED: B was served (or the run did not reach the window)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
