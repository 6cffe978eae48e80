"""redis-py (asyncio): a waiter cancelled just after a release woke it takes the wake-up
with it: another task keeps waiting while the connection lies idle.

Contract (docs/CONTRACT.md s.3, invariants `interrupt-safe` and `wakeup`): a cancellation
delivered to a caller while it waits in get_conn (``task.cancel()``, at any await,
whether or not the awaited wake-up has already come) comes out of that call and leaves
every invariant holding: "a wake-up the interrupted caller had received passed on".  A
waiting get_conn is served promptly when a connection is returned.

What redis-py does (checked against redis 8.1.0, Python 3.11.7):
    redis.asyncio.BlockingConnectionPool.get_connection waits with
    ``async with self._condition: async with async_timeout(self.timeout): await
    self._condition.wait_for(self.can_get_connection)``; ``release()`` puts the
    connection back and calls ``self._condition.notify()``, which wakes exactly one
    waiter.  If that waiter is cancelled after the notify and before it resumes (an
    ``asyncio.timeout``/``wait_for`` expiring, a task group cancelling its tasks: where
    asyncio delivers a cancellation that races a wake-up), ``asyncio.Condition.wait()``
    raises CancelledError and the notification goes with it: no other waiter is woken.
    The next waiter waits on with the connection idle in the pool, until its own timeout
    ("No connection available." while nothing is checked out), or for ever with
    ``timeout=None``, unless some later release() notifies again.

Bug or design choice:
    A bug, in asyncio.Condition before Python 3.13, which the pool relies on: CPython
    issue gh-112202, "Race between asyncio Condition.notify() and Task.cancel() may
    result in lost wakeups" (closed; fixed by PR gh-112201 for 3.13: a cancelled waiter
    that had been notified passes the notification on).  redis-py does not guard against
    it (its get_connection could notify again when a wait is cancelled); no redis-py issue
    found.  The class documents that it "blocks the current `Task` for a specified number
    of seconds until a connection becomes available", and ``timeout`` as "how many
    seconds to wait for a connection to become available, or to block forever" -- not
    that a connection idle in the pool can be missed.  On Python 3.13+ this script should
    print NOT REPRODUCED.  Found by poolcheck's controlled event loop (``--adapter
    redis-async``, ``controlled/interrupt-safe``: ``get; put | interrupt, wait | wait``).

No network: a fake connection class.  Deterministic: the cancellation is delivered right
after ``release()`` returns, before any other task runs.  The only wait is C's pool
timeout of 0.3 s.

Run:  python findings/redis_async_cancel_loses_wakeup.py
Exit 0 and "REPRODUCED: ..." if the second waiter misses the idle connection;
exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import asyncio
import os
import sys

import redis
from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError


class FakeConnection:
    """What get_connection, release and disconnect use: no socket."""

    def __init__(self, **kwargs):
        self.pid = os.getpid()
        self.connected = False

    async def connect(self):
        self.connected = True

    async def can_read(self, timeout=0):
        return False

    async def disconnect(self, nowait=False):
        self.connected = False

    def should_reconnect(self):
        return False

    async def re_auth(self):
        pass


async def settle():
    for _ in range(20):
        await asyncio.sleep(0)


async def run(cancel_woken_waiter):
    pool = BlockingConnectionPool(max_connections=1, timeout=0.3,
                                  connection_class=FakeConnection)
    held = await pool.get_connection()  # A holds the only connection
    b_task = asyncio.create_task(pool.get_connection())  # B waits
    c_task = asyncio.create_task(pool.get_connection())  # C waits behind B
    await settle()
    assert not b_task.done() and not c_task.done()

    await pool.release(held)  # notify(): B's wait future is resolved; B has not run yet
    if cancel_woken_waiter:
        b_task.cancel()  # B is cancelled before it resumes (a timeout, a task group)
    await settle()

    if b_task.cancelled():
        b = "cancelled"
    else:  # B got the connection: it gives it back at once, which wakes C
        b = "got the connection and released it"
        await pool.release(b_task.result())
    # Either way the only connection is idle now, and C has waited since before that.
    try:
        conn = await c_task
        c = "got the connection"
        await pool.release(conn)
    except RedisConnectionError as exc:
        c = f"raised ConnectionError({exc})"
    idle, in_use = len(pool._available_connections), len(pool._in_use_connections)
    return b, c, idle, in_use


async def main():
    print(f"redis {redis.__version__}, Python {sys.version.split()[0]}")
    b, c, idle, in_use = await run(cancel_woken_waiter=False)
    print(f"control (no cancellation): B {b}; C {c}")
    if c.startswith("raised"):
        print("NOT REPRODUCED: the control run failed too; the fake connection is wrong")
        return 1
    b, c, idle, in_use = await run(cancel_woken_waiter=True)
    print(f"B cancelled after release() woke it: B {b}; C {c}; "
          f"afterwards {idle} idle, {in_use} in use")
    if c.startswith("raised"):
        print("REPRODUCED: the wake-up was lost with the cancelled waiter: C waited out its "
              "whole timeout and got 'No connection available.' while the pool's only "
              "connection lay idle (with timeout=None it would wait for ever)")
        return 0
    print("NOT REPRODUCED: the cancelled waiter passed its wake-up on; C got the connection")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
