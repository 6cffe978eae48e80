"""urllib3: a KeyboardInterrupt while urlopen() waits for a connection adds a slot to the pool.

Contract (docs/CONTRACT.md s.3, invariant `interrupt-safe`, and `bound`): an exception
delivered to a caller while it waits in get_conn leaves the pool as it was: with
block=True and maxsize=N, never more than N connections exist.

What urllib3 does (checked against urllib3 2.8.0, Python 3.11):
    HTTPConnectionPool.urlopen() calls ``self._get_conn(timeout=pool_timeout)`` inside a
    ``try:`` whose ``finally:`` puts the connection back (``self._put_conn(conn)``) when
    the exit was not clean. Only ``EmptyPoolError`` is marked clean. A KeyboardInterrupt
    (or a gevent/eventlet Timeout) raised while ``_get_conn`` waits in the pool's queue
    takes nothing out of the queue, yet the ``finally:`` puts ``None`` back: the queue
    now holds one placeholder more than the slots that are free. The next caller gets
    that placeholder and opens a connection while the first is still checked out
    (maxsize + 1 connections in a blocking pool); when the first comes back, the queue is
    full and ``_put_conn`` raises ``FullPoolError`` at its holder. Had the waiter been
    interrupted after the holder returned its connection, the same ``_put_conn(None)``
    would raise ``FullPoolError`` in place of the KeyboardInterrupt.

Bug or design choice:
    Looks like a bug, of the family urllib3 already fixed twice for ordinary exceptions:
    #1758 (a placeholder put back after ``EmptyPoolError``, fixed in 1.25.10) and PR
    #5062 (after an invalid timeout, fixed in 2.8.0). ``block=True`` is documented as
    "no new connections will be created" beyond ``maxsize``. Found by poolcheck's
    ``controlled/interrupt-safe`` (``poolcheck check urllib3:HTTPConnectionPool --check
    controlled/interrupt-safe``).

No network: connections are constructed but never connected. No threads: the interrupt
is raised by the pool's own queue class (``QueueCls``), once, where a Ctrl-C would arrive
while the caller waits in ``queue.get()``.

Run:  python findings/urllib3_interrupt_adds_placeholder.py
Exit 0 and "REPRODUCED: ..." if a second connection is handed out while the first is
still checked out (maxsize=1, block=True); exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import queue
import sys

import urllib3
from urllib3.exceptions import EmptyPoolError, FullPoolError


class InterruptingQueue(queue.LifoQueue):
    """The pool's queue; once armed, its next blocking get() raises KeyboardInterrupt, as
    a Ctrl-C would while the caller waits in it."""

    armed = False

    def get(self, block=True, timeout=None):
        if block and InterruptingQueue.armed:
            InterruptingQueue.armed = False
            raise KeyboardInterrupt("Ctrl-C while waiting for a connection (simulated)")
        return super().get(block, timeout)


class Pool(urllib3.HTTPConnectionPool):
    QueueCls = InterruptingQueue


def main() -> int:
    pool = Pool("127.0.0.1", 9, maxsize=1, block=True)
    first = pool._get_conn(timeout=0.1)  # the only slot: checked out
    InterruptingQueue.armed = True
    try:
        pool.urlopen("GET", "/", pool_timeout=5, retries=False)
        print("urlopen returned: the interrupt was not delivered")
        return 1
    except KeyboardInterrupt as err:
        print(f"urlopen raised KeyboardInterrupt: {err}")
    try:
        second = pool._get_conn(timeout=0.1)
    except EmptyPoolError:
        print("NOT REPRODUCED: the pool is still full while the first connection is out")
        return 1
    print(f"urllib3 {urllib3.__version__}: with the first connection still checked out, "
          f"_get_conn gave a second one ({second is not first and 'a new connection'})")
    pool._put_conn(first)
    try:
        pool._put_conn(second)
        print("both came back without error")
    except FullPoolError as err:
        print(f"the first came back; returning the second raised FullPoolError: {err}")
    print("REPRODUCED: maxsize=1, block=True, yet two connections were checked out at once "
          "after an interrupt in urlopen's wait")
    return 0


if __name__ == "__main__":
    sys.exit(main())
