"""urllib3: HTTPConnectionPool.close() leaves a blocked _get_conn() waiter blocked for ever.

Contract (docs/CONTRACT.md s.2, invariants `closed`, `wakeup`, `deadlock-free`):
    after close(), get_conn raises ClosedPoolError; a waiting get_conn is served
    promptly (here: woken with ClosedPoolError) and no call hangs.

What urllib3 does (checked against urllib3 2.8.0, Python 3.11):
    close() swaps ``self.pool`` for None and drains the *old* queue
    (connectionpool.py: ``old_pool, self.pool = self.pool, None``).  A thread already
    inside ``old_pool.get(block=True, timeout=None)`` is never notified: nothing is
    ever put into the old queue again.  When the holder later returns its
    connection with ``_put_conn``, ``self.pool is None`` so the connection is closed
    and discarded (as documented) -- it is NOT handed to the waiter, which therefore
    stays blocked for ever.  Only *new* callers get ClosedPoolError.

Bug or design choice:
    Looks like an unhandled corner rather than a documented choice.  The docs only say
        close():     "Close all pooled connections and disable the pool."
        _put_conn(): "If the pool is closed, then the connection will be closed and
                      discarded."
    Nothing documents that in-flight waiters (block=True, timeout=None) hang for ever;
    "disable the pool" suggests they should fail.  (_get_conn/_put_conn are private
    API, but they are exactly what urlopen() uses, so urlopen(pool_timeout=None) on a
    block=True pool hangs the same way.)

No network: connections are constructed but never connected.  The only helper is a
LifoQueue subclass that sets an Event when a thread *enters* get(), so we know the
waiter holds a reference to the old queue before close() runs (once it is inside the
old queue's get(), the outcome no longer depends on timing).  join(timeout) is used
only to observe that the waiter is still blocked.

Run:  python findings/urllib3_close_leaves_waiters.py
Exit 0 and "REPRODUCED: ..." if the waiter is still blocked after close() and after
the connection is returned; exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import queue
import sys
import threading

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ClosedPoolError

OBSERVE = 1.0  # seconds we watch the waiter after each event


class RecordingConnection(HTTPConnection):
    """Real urllib3 HTTPConnection that records close(); never connects here."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.closed_by_pool = False

    def close(self):
        self.closed_by_pool = True
        super().close()


entered_get = threading.Event()


class SignallingLifoQueue(queue.LifoQueue):
    def get(self, block=True, timeout=None):
        if threading.current_thread().name == "waiter":
            entered_get.set()
        return super().get(block, timeout)


class Pool(HTTPConnectionPool):
    ConnectionCls = RecordingConnection
    QueueCls = SignallingLifoQueue


def main():
    print(f"urllib3 {urllib3.__version__}")
    pool = Pool("127.0.0.1", 9, maxsize=1, block=True)  # port 9: never contacted

    held = pool._get_conn()  # the only connection
    outcome = {}

    def waiter():
        try:
            outcome["conn"] = pool._get_conn(timeout=None)
        except BaseException as e:  # record whatever it raises
            outcome["exc"] = e

    t = threading.Thread(target=waiter, name="waiter", daemon=True)
    t.start()
    if not entered_get.wait(5):
        print("NOT REPRODUCED: waiter never reached the pool queue")
        return 1

    pool.close()
    t.join(OBSERVE)
    blocked_after_close = t.is_alive()
    print(f"after close(): waiter still blocked {OBSERVE}s later: {blocked_after_close}"
          f"  (outcome so far: {outcome or 'nothing'})")

    try:
        pool._get_conn(timeout=0)
        new_caller = "got a connection"
    except ClosedPoolError:
        new_caller = "ClosedPoolError"
    print(f"a new _get_conn() after close(): {new_caller}")

    pool._put_conn(held)  # holder returns its connection after close()
    t.join(OBSERVE)
    blocked_after_put = t.is_alive()
    print(f"after holder's _put_conn(): returned connection closed by pool: "
          f"{held.closed_by_pool}; waiter got it: {'conn' in outcome}; "
          f"waiter still blocked {OBSERVE}s later: {blocked_after_put}")

    if blocked_after_close and blocked_after_put:
        print("REPRODUCED: urllib3 close() does not wake a blocked _get_conn(timeout=None) "
              "waiter (no ClosedPoolError); the connection returned after close() is "
              f"closed (closed={held.closed_by_pool}) instead of reaching the waiter, "
              "so the waiter hangs for ever")
        return 0
    print(f"NOT REPRODUCED: waiter finished with {outcome}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
