"""urllib3: _put_conn() raises AttributeError when close() runs while it handles a full pool.

Contract (docs/CONTRACT.md s.1 and s.3, invariant `errors`): put_conn raises nothing but the
contract's errors, whatever runs concurrently.  On a closed pool, or a full one, the
returned connection is closed (or, for put_conn(None), the slot is simply given back).

What urllib3 does (checked against urllib3 2.8.0, Python 3.11):
    _put_conn() reads ``self.pool`` several times (connectionpool.py, _put_conn):
        if self.pool is not None:
            try:
                self.pool.put(conn, block=False)
            except AttributeError:  # self.pool is None.
                pass
            except queue.Full:
                ...
                log.warning("Connection pool is full, ...: %s. ... size: %s",
                            self.host, self.pool.qsize())      # line 336
    close() does ``old_pool, self.pool = self.pool, None``.  If another thread's close()
    runs after put() has raised queue.Full but before the log.warning(...) arguments are
    evaluated, ``self.pool.qsize()`` is ``None.qsize()`` and the AttributeError escapes
    from _put_conn.  The arguments are evaluated whatever the log level, so the warning
    does not need to be enabled.  urlopen() calls ``self._put_conn(conn)`` (``conn`` is None
    after a broken connection) inside a ``finally:``, so there the AttributeError would also
    replace the exception that was being handled.

    The Full branch is ordinary on a block=False pool: get_conn never waits and makes new
    connections once the queue is empty, so returning more than maxsize connections fills
    the queue.  Part 1 shows this happening without any concurrency.

Bug or design choice:
    Looks like a bug (a narrow race).  The ``except AttributeError: pass`` around the put,
    commented "self.pool is None.", shows the authors meant _put_conn to tolerate a close()
    on another thread; the qsize() in the Full branch misses that case.  The fix is to read
    ``self.pool`` once into a local (as close() does with ``old_pool``) and use the local
    for both put() and qsize().

No network: connections are constructed but never connected.  The interleaving is forced
without sleeps.  The pool's queue is a LifoQueue subclass whose put(), once armed, catches
the real queue.Full from LifoQueue.put, signals a real second thread that calls pool.close(),
waits until close() has returned, and re-raises the same queue.Full.  This is exactly the
window between put() failing and qsize().  Event.wait(5) only guards against a stuck thread.

Run:  python findings/urllib3_put_conn_races_close.py
Exit 0 and "REPRODUCED: ..." if the full-pool branch is reached in ordinary use and
_put_conn(None) raises AttributeError from qsize() when close() runs in that window;
exit 1 and "NOT REPRODUCED: ..." otherwise.
"""
import logging
import queue
import sys
import threading
import traceback

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

MAXSIZE = 2
GUARD = 5.0  # seconds; only to avoid hanging if a thread gets stuck


class RaceQueue(queue.LifoQueue):
    """LifoQueue whose put(), when armed, lets another thread close the pool just after Full."""

    def __init__(self, maxsize=0):
        super().__init__(maxsize)
        self.armed = False
        self.full_seen = threading.Event()  # put() has raised queue.Full
        self.closed = threading.Event()  # the other thread's close() has returned

    def put(self, item, block=True, timeout=None):
        try:
            return super().put(item, block, timeout)
        except queue.Full:
            if self.armed:
                self.armed = False
                self.full_seen.set()
                if not self.closed.wait(GUARD):
                    print("(closer thread did not finish in time)")
            raise


class RecordingConnection(HTTPConnection):
    """Real urllib3 HTTPConnection that records close(); never connects here."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.was_closed = False

    def close(self):
        self.was_closed = True
        super().close()


class Pool(HTTPConnectionPool):
    ConnectionCls = RecordingConnection
    QueueCls = RaceQueue


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main():
    print(f"urllib3 {urllib3.__version__}")
    recorder = Recorder()
    logger = logging.getLogger("urllib3.connectionpool")
    logger.addHandler(recorder)
    logger.propagate = False

    # 1. Ordinary use: block=False, more connections returned than maxsize -> queue.Full.
    pool = Pool("127.0.0.1", 9, maxsize=MAXSIZE, block=False)  # port 9: never contacted
    held = [pool._get_conn() for _ in range(MAXSIZE + 1)]
    print(f"block=False, maxsize={MAXSIZE}: {len(held)} connections checked out at once "
          "(get_conn never waits)")
    for conn in held:
        pool._put_conn(conn)
    full_branch_ordinary = any("pool is full" in m for m in recorder.messages)
    print(f"returned all {len(held)}: pool holds {pool.pool.qsize()}, last one discarded "
          f"(closed: {held[-1].was_closed}); warnings: {recorder.messages}")

    # 2. The race, on a fresh pool in the same ordinary state: MAXSIZE + 1 connections
    #    out, MAXSIZE returned (the queue is full), and the last caller found its
    #    connection broken, closed it itself and gives the slot back with _put_conn(None),
    #    as urlopen does.  Between put() raising queue.Full and qsize(), another thread
    #    runs close().
    pool = Pool("127.0.0.1", 9, maxsize=MAXSIZE, block=False)
    held = [pool._get_conn() for _ in range(MAXSIZE + 1)]
    for conn in held[:-1]:
        pool._put_conn(conn)
    held[-1].close()
    q = pool.pool
    print(f"fresh pool: {len(held)} out, {MAXSIZE} returned, qsize={q.qsize()}/{MAXSIZE}; "
          "the last caller closed its broken connection and calls _put_conn(None)")

    def closer():
        if q.full_seen.wait(GUARD):
            pool.close()
        q.closed.set()

    t = threading.Thread(target=closer, name="closer", daemon=True)
    t.start()
    q.armed = True
    raised = None
    try:
        pool._put_conn(None)
    except Exception as e:  # record whatever escapes
        raised = e
    t.join(GUARD)
    print(f"close() ran on thread 'closer' after put() raised queue.Full: "
          f"{q.full_seen.is_set() and pool.pool is None}")

    where = ""
    if raised is not None:
        frame = traceback.extract_tb(raised.__traceback__)[-1]
        where = f'{frame.filename.rsplit("/", 1)[-1]}:{frame.lineno} in {frame.name}: {frame.line}'
        print(f"_put_conn(None) raised {type(raised).__name__}: {raised}")
        print(f"  at {where}")
    else:
        print("_put_conn(None) returned normally")

    if (full_branch_ordinary and isinstance(raised, AttributeError)
            and "qsize" in str(raised) and "_put_conn" in where):
        print(f"REPRODUCED: urllib3 {urllib3.__version__} _put_conn(None) raised "
              f"AttributeError ({raised}) from self.pool.qsize() in its queue.Full branch "
              "when close() on another thread set self.pool = None after put() raised "
              f"Full; that branch is ordinary on a block=False pool (returning "
              f"{MAXSIZE + 1} connections to maxsize={MAXSIZE} reaches it)")
        return 0
    print(f"NOT REPRODUCED: ordinary Full branch seen: {full_branch_ordinary}; "
          f"_put_conn(None) raised {raised!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
