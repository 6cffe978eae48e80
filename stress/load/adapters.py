"""Adapters: drive pools that do not speak the native interface (docs/CONTRACT.md, section 1).

An adapter turns ``Target.make(maxsize, block, timeout, factory)`` into an object with the
native interface (``get_conn(timeout=None)``, ``put_conn(conn)``, ``close()``) whose
connections are the ones the checker's ``factory`` made. Adapters are thin and faithful:
they translate calls and names, and never lock, retry, or tidy up after the pool, so a
buggy pool cannot pass and a correct one cannot fail because of them. Where a library's
semantics differ from the contract, the difference shows in the checks' results.

Mapping decisions, per adapter:

native
    ``cls(host, port, maxsize=, block=, timeout=, connection_factory=)``; the pool itself is
    returned, unwrapped.

urllib3 (urllib3's ``HTTPConnectionPool`` and pools written in its style)
    * Built as ``cls("127.0.0.1", 80, maxsize=, block=)``: the constructor's ``timeout``
      is urllib3's *socket* timeout, so it is left at the class's default.
    * Connections: if the class has ``ConnectionCls``, the instance gets its own
      ``ConnectionCls`` (set before ``__init__`` runs, so pools that connect eagerly use
      it too) whose construction, with any arguments, calls ``factory()``; otherwise its
      ``_new_conn`` is replaced on the instance by one that calls ``factory()``.
    * What the pool holds is a thin wrapper around the checker's connection: ``close()``
      is forwarded, every other attribute is read from the connection, and it adds
      ``is_connected`` (``not conn.closed``), which urllib3 2's ``_get_conn`` reads through
      ``is_connection_dropped``. An open fake connection counts as connected: a real idle
      connection is one that is connected, and answering False would make urllib3 close
      and then hand out the very same object. No ``sock`` attribute is added: urllib3 1.x
      takes a missing ``sock`` as "not dropped" but ``sock = None`` as "dropped".
      ``get_conn`` hands the checker the connection itself; ``put_conn`` gives the pool
      back the wrapper it handed out.
    * ``get_conn(timeout)`` calls ``_get_conn(timeout=...)``, with the pool timeout given
      to ``make`` when ``timeout`` is None. As urllib3's own ``urlopen`` does, if
      ``_get_conn`` raises anything (BaseException included) but an exception with
      ``EmptyPoolError`` or ``ClosedPoolError`` in its MRO, ``_put_conn(None)`` gives the
      slot back before the exception propagates. ``put_conn(c)`` is ``_put_conn(c)``;
      ``close()`` is ``close()`` (``has_close`` is False without one).

urllib3-urlopen (urllib3's ``HTTPConnectionPool``, driven through its public ``urlopen``)
    * Built as for ``urllib3`` (``cls("127.0.0.1", 80, maxsize=, block=)``, the instance's
      own ``ConnectionCls``), but what that class makes is a fake urllib3
      ``HTTPConnection``: a reusable object whose socket is one of the checker's
      connections. Constructing it connects nothing (as in urllib3); ``request()`` calls
      ``factory()`` when it has no socket (http.client's ``auto_open``: a new connection,
      or one that ``close()`` emptied), then ``factory.fault("send")``; ``getresponse()``
      calls ``factory.fault("read")`` and answers an empty ``200`` (``Content-Length: 0``,
      keep-alive): a real ``http.client.HTTPResponse`` for urllib3 1.x (which wraps it
      with ``HTTPResponse.from_httplib``), and for urllib3 2 (``_make_request`` takes
      ``response_conn``) a real ``urllib3.response.HTTPResponse`` around it, as urllib3 2's
      own ``getresponse()`` builds it. So an armed failure surfaces at connect (the factory
      call) for a new connection, and at send for an idle one; ``read`` is reached only by
      a failure armed after the request was sent (another thread arming the factory), or
      by a factory whose ``fault`` skips "send" (the points are tried in order). ``close()``
      closes the socket (a closed one is not closed again, as for a real socket) and
      forgets it. ``is_connected`` is "has an open socket", ``is_closed`` "has no socket"
      (urllib3 2); there is no ``sock`` attribute, which urllib3 1.x takes as "not
      dropped" (a socket the caller closed is replaced when the next request is sent).
    * ``get_conn(t)`` is ``urlopen("GET", "/", preload_content=False, release_conn=False,
      retries=False, pool_timeout=t)`` (the timeout given to ``make`` when ``t`` is None;
      the socket timeout is the pool's own). The response holds the connection; the
      checker gets the connection behind ``response.connection`` and the adapter keeps the
      response. ``put_conn(c)`` is ``response.release_conn()``. ``put_conn(None)`` (the
      caller found the connection broken and closed it) is ``response.close()`` (urllib3
      closes the response's connection, whose socket the caller already closed) then
      ``response.release_conn()``: what urllib3 itself does when reading a body fails. The
      empty connection object goes back to the pool and reconnects on its next request.
      ``close()`` is ``close()``.
    * Errors: ``EmptyPoolError``/``ClosedPoolError`` come out of ``urlopen`` unchanged.
      With ``retries=False`` urlopen re-raises an ``OSError`` from sending or reading (the
      checker's ``ConnectFailed`` is one) as ``ProtocolError("Connection aborted.",
      error)``; when ``error`` is the very object a fault point or factory call of this
      adapter raised, the adapter raises that object instead (``from`` the
      ``ProtocolError``), and nothing else. A ``BaseException`` (``Interrupted``) is not
      caught by urlopen and comes out as it was raised.
    * Differences from the ``urllib3`` adapter, left visible: urllib3's own cleanup runs
      (a failed request closes its connection and ``_put_conn(None)``), so a failure at
      send or read takes an idle connection out of the pool and closes it inside a
      ``get_conn`` that fails; a connection the caller broke is not replaced by ``None``
      but goes back as an empty connection object; ``timeout`` (the socket timeout) is
      never passed, so bugs that need an invalid one (urllib3 PR #5062) are not reached.

redis (redis-py ``BlockingConnectionPool``, or a class with its interface)
    * ``cls(max_connections=maxsize, timeout=timeout, connection_class=<fake>,
      poolcheck_factory=factory)``: the pool hands its ``**connection_kwargs`` to the
      connection class, which is how the fake gets the factory.
    * The fake connection class models a redis ``Connection``: a reusable object around a
      socket. Its socket is one of the checker's connections: ``connect()`` calls
      ``factory()`` when it has none or the one it had is closed (redis reconnects the
      same object after ``disconnect()``); ``disconnect()`` closes it (once: as in redis,
      disconnecting a disconnected connection does nothing). ``can_read()`` is False,
      ``should_reconnect()`` False, ``is_ready_for_command()`` True, ``pid`` is this
      process. So the factory is called where redis opens sockets: in ``connect()``,
      which ``get_connection`` calls and whose failure it handles by releasing the
      connection; and, first, in the constructor (``make_connection``), where a real one
      fails on bad options or SSL setup: an armed failure is raised at whichever of the
      two comes first.
    * ``get_conn`` is ``get_connection()``; ``redis.exceptions.ConnectionError("No
      connection available.")`` (its timeout) becomes this module's ``EmptyPoolError``:
      an exception with ``ConnectionError`` in its MRO and exactly that message, nothing
      else (so a redis-like class raising its own ``ConnectionError`` works too).
      ``put_conn(c)`` is ``release()`` of the redis connection ``c`` came from;
      ``close()`` is ``disconnect()``.
    * Differences from the contract, left visible: redis always blocks, so ``block=False``
      has no equivalent (``make`` raises ``NotApplicable``; ``MODES`` says so); after
      ``disconnect()`` the pool keeps serving (it reconnects) and never raises anything
      like ``ClosedPoolError``; ``disconnect()`` also closes connections that are checked
      out; ``release()`` of a connection to a closed pool keeps it.

redis-async (``redis.asyncio.BlockingConnectionPool``)
    * The ``redis`` mapping, on an event loop (``asynchronous``): built the same way, with
      ``poolcheck_factory=connect`` (the checker's coroutine function), block=True only.
      The fake connection shares the sync one's socket handling; its ``connect()`` awaits
      ``connect()`` (a completion the controlled loop decides, and a place a cancellation
      can arrive); ``disconnect()``, ``can_read()`` and ``re_auth()`` (which the pool's
      release listener awaits) are coroutines that never wait. The constructor fault
      point is the same: ``connect.fault`` (the facade's), else the fault of the
      ``factory`` behind ``connect`` (the controlled loop's).
    * The per-call timeout is per calling task (a ``ContextVar``), not per thread: every
      task runs in the loop's one thread.
    * ``async get_conn`` awaits ``get_connection()`` (the same ``EmptyPoolError``
      translation; a ``CancelledError`` comes out unchanged); ``async put_conn`` awaits
      ``release()`` (``put_conn(None)``: of the closed connection, first among those the
      calling task checked out); ``async close`` awaits ``disconnect()``.
    * Differences from the contract, left visible: those of ``redis``. Differences from
      the sync pool: the asyncio pool counts its in-use connections instead of keeping
      ``None`` placeholders, so a failure constructing a connection object loses no slot;
      its ``timeout`` covers only the wait on its ``asyncio.Condition`` (not acquiring
      the condition's lock); and on Python < 3.13 a waiter cancelled just after
      ``release()`` notified it takes the wake-up with it (``asyncio.Condition``, CPython
      gh-112202): another waiter waits on while a connection is idle (findings/).

sqlalchemy (``sqlalchemy.pool.QueuePool``)
    * ``cls(creator, pool_size=maxsize, max_overflow=0 if block else -1, timeout=timeout)``.
      ``max_overflow=-1`` is QueuePool's own non-blocking mode, and matches the contract's
      ``block=False``: never wait, create when nothing is idle, keep at most ``pool_size``
      idle and close what is returned to a full pool.
    * ``creator()`` wraps ``factory()`` in a fake DB-API connection: ``close()`` is
      forwarded (every time the pool calls it), ``rollback()`` and ``commit()`` do nothing.
    * ``get_conn`` is ``pool.connect()``, which returns a ``_ConnectionFairy``; the checker
      gets the connection inside it, and the adapter keeps the fairy. ``put_conn(c)`` is
      ``fairy.close()`` (check in); ``put_conn(None)`` is ``fairy.invalidate()`` (close
      the DB-API connection, check the slot in empty: QueuePool reconnects it on a later
      checkout). ``sqlalchemy.exc.TimeoutError`` (its timeout) becomes ``EmptyPoolError``.
      ``close()`` is ``dispose()``.
    * Differences from the contract, left visible: ``dispose()`` only closes idle
      connections; the pool keeps serving and checking in afterwards, and it resets its
      count of connections, so more than ``pool_size`` may exist after it.

httpcore (httpcore 1.x's sync ``ConnectionPool``, the pool behind httpx)
    * ``cls(max_connections=maxsize, max_keepalive_connections=maxsize,
      network_backend=<fake>)``. httpcore has no non-blocking mode (a request waits for a
      connection, up to its pool timeout), so ``block=False`` has no equivalent (``make``
      raises ``NotApplicable``; the adapter's ``modes`` say so).
    * The fake network backend's ``connect_tcp`` (and ``connect_unix_socket``) calls
      ``factory()``, so an armed failure is raised where httpcore connects, and returns a
      fake ``NetworkStream`` around the checker's connection: a keep-alive HTTP/1.1 server
      that answers each request written with ``HTTP/1.1 200 OK``, ``Content-Length: 0``.
      ``read()`` returns that answer, or ``b""`` (end of stream) once the connection is
      closed; it never blocks and never touches the network (a read with no request
      outstanding, which httpcore never makes, is an ``AdapterError``). ``close()`` is
      forwarded, every time httpcore calls it. ``get_extra_info("is_readable")`` is True
      once the connection is closed, as for a socket whose peer hung up, so httpcore
      expires an idle connection the caller found broken, as it would a real one; every
      other ``get_extra_info`` is None (no TLS).
    * A checkout is a response held open: ``get_conn(t)`` is ``handle_request()`` of a
      ``GET http://127.0.0.1:80/`` (with its ``Host`` header) whose
      ``extensions={"timeout": {"pool": t}}`` (the timeout given to ``make`` when ``t`` is
      None); the adapter reads the empty body without closing the
      response and hands the checker the connection behind the response's
      ``network_stream``. ``httpcore.PoolTimeout`` becomes ``EmptyPoolError``.
      ``put_conn(c)`` closes that response (httpcore makes the connection idle again);
      ``put_conn(None)`` closes the response of the connection the caller closed (see
      below), and httpcore then finds it expired. ``close()`` is ``close()``.
    * Every request goes to one origin: httpcore's ``max_connections`` bounds all
      origins together, and a connection serves only its own, so a second origin would
      only add idle connections that httpcore closes to make room.
    * Differences from the contract, left visible: no ``block=False``; no closed state:
      after ``close()`` the pool keeps serving with new connections, and raises nothing
      like ``ClosedPoolError``; ``close()`` forgets every connection under the pool's lock
      and closes them, those in use too, after letting go of it, so new connections are
      made while old ones are still open, and a request racing it fails with httpcore's
      own errors (here ``RemoteProtocolError``; ``ReadError`` on a real socket); a
      connection that was still connecting is not closed at all; the pool timeout starts
      again each time a connection assigned to a waiting request is taken by another one
      first; and a bug: a pool timeout racing a freed slot can leave a connection that
      never connects holding that slot for ever (httpcore issue #1093; findings/).

httpcore-async (httpcore 1.x's ``AsyncConnectionPool``, the pool behind httpx's AsyncClient)
    * The ``httpcore`` mapping, on an event loop (``asynchronous``: ``Target.make`` hands
      the adapter to the controlled loop, or wraps it in the blocking facade): built the
      same way, with a fake ``AsyncNetworkBackend`` whose ``connect_tcp`` awaits
      ``connect()``, the checker's coroutine function; block=True only; one origin.
      httpcore needs anyio to run on asyncio (``needs``: without it the target is refused
      with ``pip install anyio``).
    * The fake ``AsyncNetworkStream`` answers as the sync one (the same server end), and
      each ``read``, ``write`` and ``aclose`` passes through the event loop once
      (``asyncio.sleep(0)``), as anyio's socket streams do: a checkpoint, where a
      cancellation can arrive; none of them waits for anything.
    * ``async get_conn(t)`` is ``await handle_async_request()`` of the same request, with
      ``{"pool": t}``, then ``await response.aread()`` (a failure there, a cancellation,
      closes the response first, as httpx and httpcore's own ``request()`` do; httpcore's
      stream has closed it already); ``PoolTimeout`` becomes ``EmptyPoolError``; a
      ``CancelledError`` comes out unchanged. ``async put_conn(c)``
      is ``await response.aclose()`` (``put_conn(None)``: of the connection the caller
      closed, picked as below, first among those the calling task checked out);
      ``async close()`` is ``await aclose()``.
    * Differences from the contract, left visible: those of the sync pool (the code is
      the same, written for async), and what a cancellation leaves (``interrupt-safe``):
      a get_conn cancelled after the pool made a connection for it, whether the freed
      slot's new connection before it connects or its own just after (state NEW, socket
      open), leaves that connection owned by no request and never reclaimed: its slot is
      lost for the life of the pool (httpcore issue #1093; findings/). The same orphan
      comes from a pool timeout that races a freed slot, as in the sync pool.

Timeouts (redis, redis-async, sqlalchemy): these pools take one timeout at construction
and read it from an attribute on each call (``timeout``, ``_timeout``); the contract passes
one per ``get_conn`` call. The adapter builds the pool from a subclass that only turns
that attribute into a per-thread value (redis-async: per task): during
``get_conn(timeout=t)`` the calling thread reads ``t``, every other thread (and every call
with ``timeout=None``) the pool's own value. Nothing else of the class changes.

``put_conn(None)`` (redis, redis-async, sqlalchemy, httpcore, httpcore-async,
urllib3-urlopen): the contract's "the connection I held broke; I closed it; give its slot
back" does not say which connection, and these libraries need to know (the redis
connection to release, the fairy to invalidate, the response to close or release). The
adapter picks, among the connections checked out through it, one that is closed: first
those the calling thread (redis-async, httpcore-async: task) checked out, the most recent
first. The checker always closes the
connection just before ``put_conn(None)``, in the thread that got it, so this finds it
whenever only one of them is closed; when the pool itself closed several the caller holds
(redis's ``disconnect()``, httpcore's ``close()``), they are interchangeable: each goes
back to the pool the same way. (Through the blocking facade each call is a task of its
own, so there only "the most recent first" applies.)

Two database pools follow (after the shared translations above, which they use too:
``put_conn(None)`` picks the closed connection the same way; dbutils reads one attribute
per calling thread, as the timeouts do).

psycopg_pool (psycopg_pool's sync ``ConnectionPool``, psycopg 3)
    * ``cls("", connection_class=<fake>, kwargs={"poolcheck_factory": factory},
      min_size=0, max_size=maxsize, timeout=timeout, open=True)``: psycopg_pool passes
      ``kwargs`` to ``connection_class.connect(conninfo, **kwargs)``, which is how the
      fake gets the factory. ``min_size=0``: nothing is made before it is asked for, as
      in the contract (psycopg_pool's default, ``min_size=4``, fills the pool in the
      background at once, which the contract allows too but which checks less of the
      pool: its growth path is the one getconn takes when nothing is idle). Every other
      option keeps its default (no ``check``, ``reset`` or ``configure``; 3 workers).
      ``timeout=None`` (wait for ever) has no equivalent: it becomes the longest wait
      ``threading`` accepts, halved. psycopg_pool has no non-blocking mode, so
      ``block=False`` has no equivalent (``make`` raises ``NotApplicable``).
    * The fake connection class's ``connect`` calls ``factory()`` (psycopg_pool calls it
      in a worker thread) and returns a fake psycopg ``Connection`` around the checker's
      connection: ``closed`` is the checker connection's; ``pgconn.transaction_status``
      (also ``info``) is ``IDLE``, or ``UNKNOWN`` once the connection is closed, as
      psycopg reports a closed connection; ``close()`` closes it unless it is closed
      (psycopg's ``close()`` does nothing then); ``rollback()``/``commit()`` do nothing;
      ``_pool``, ``_created_at``, ``_expire_at`` are plain attributes psycopg_pool sets.
    * ``get_conn(t)`` is ``getconn(t)`` (None: the pool's own timeout); ``PoolTimeout``
      becomes ``EmptyPoolError`` and ``PoolClosed`` becomes this module's
      ``ClosedPoolError``. ``put_conn(c)`` is ``putconn`` of the psycopg connection ``c``
      came from; ``put_conn(None)`` is ``putconn`` of the one the caller closed, which
      psycopg_pool then sees closed (``UNKNOWN``), as after a caller's ``conn.close()``,
      and replaces in the background. ``close()`` is ``close()``.
    * Differences from the contract, left visible: connections are made by the pool's
      worker threads, not by the caller: a caller waits for a worker (one connection is
      made at a time), and a connection failure is never raised to a caller: the worker
      logs it and retries about 1 s later (for ``reconnect_timeout``, 5 minutes), while
      callers time out; a timeout ``<= 0`` is a deadline already past: ``getconn``
      raises ``PoolTimeout`` before it looks for an idle connection; waiters are told the
      pool is closed only after ``close()`` has stopped the workers; and a fragility: a
      BaseException while a worker connects kills the worker and leaves the pool unable
      to grow (findings/).

dbutils (DBUtils' ``PooledDB``, ``dbutils.pooled_db``)
    * ``cls(creator=<fake DB-API module>, mincached=0, maxcached=maxsize, maxshared=0,
      maxconnections=maxsize if block else 0, blocking=...)``. ``maxshared=0`` (and
      ``threadsafety = 1``): every connection is dedicated. ``maxconnections`` counts
      connections checked out, ``maxcached`` idle ones, and a connection is created only
      when none is idle, so at most ``maxsize`` exist. ``block=False`` is DBUtils' own
      unlimited mode (``maxconnections=0``): never wait, create when nothing is idle,
      keep at most ``maxcached`` idle and close what is returned to a full cache.
    * DBUtils has no timeout: at its limit it waits for ever (``blocking=True``) or
      raises ``TooManyConnectionsError`` at once (``blocking=False``). It reads
      ``self._blocking`` on each wait, so the adapter makes that attribute per calling
      thread (as the timeouts above): a call whose timeout is None (wait for ever) gets
      ``True``, a call with a finite timeout ``False``: a finite timeout is run as 0.
      ``TooManyConnectionsError`` becomes ``EmptyPoolError``.
    * The fake module has ``connect()``, which calls ``factory()`` and returns a fake
      DB-API connection around the checker's connection, ``threadsafety = 1`` and the
      ``OperationalError``/``InterfaceError``/``InternalError`` DBUtils' failover
      catches. As drivers do, every operation on a closed connection (``rollback()``,
      ``commit()``, ``ping()``) raises ``InterfaceError``; ``close()`` closes it unless
      it is closed. With ``ping()`` present, DBUtils' default ``ping=1`` checks a
      connection each time it leaves the idle cache.
    * ``get_conn`` is ``connection()``, which returns a ``PooledDedicatedDBConnection``
      around a SteadyDB connection around the creator's: the checker gets the creator's
      (``dbapi_connection``), the adapter keeps the pooled one. ``put_conn(c)`` is the
      pooled connection's ``close()`` (back to the idle cache); ``put_conn(None)`` is the
      same for the one the caller closed: DBUtils' rollback on return fails on it, and
      SteadyDB reconnects there (``factory()`` during the return). ``close()`` is
      ``close()``.
    * Differences from the contract, left visible: no bounded wait (a finite timeout is
      run as 0); no closed state: ``close()`` closes the idle connections, and the pool
      keeps serving and keeping what is returned; a broken connection is replaced while
      it is returned, so ``put_conn(None)`` can raise what the factory raises (an
      ``Exception`` is swallowed; a BaseException is not); and a bug: that BaseException
      leaves the returned connection counted as checked out for good (findings/).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import http.client
import importlib
import inspect
import io
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

Factory = Callable[[], Any]
HOST, PORT = "127.0.0.1", 80
BOTH = frozenset({True, False})
BLOCKING_ONLY = frozenset({True})


class EmptyPoolError(Exception):
    """A library's "no connection became available in time", under the contract's name."""


class NotApplicable(Exception):
    """The library has no equivalent of this configuration (e.g. redis and block=False)."""


class AdapterError(Exception):
    """The adapter cannot translate a call (the caller broke the adapter's assumptions)."""


@dataclass(frozen=True)
class Adapter:
    name: str
    methods: tuple[str, ...]  # what the class must have
    close: str | None  # the library's name for close(), if any
    modes: frozenset[bool]  # the values of block the library can be checked in
    library: str | None  # the package a default target needs (pip install NAME)
    default_target: str | None
    call: str  # how make() calls the class, for error messages
    probe: Callable[[inspect.Signature], object]  # binds make()'s call, or raises TypeError
    build: Callable[[type, int, bool, float | None, Factory], Any]
    asynchronous: bool = False  # get_conn is a coroutine function: driven on an event loop
    needs: str | None = None  # a package the library needs to run it, beyond itself

    def has_close(self, cls: type) -> bool:
        return self.close is not None and callable(getattr(cls, self.close, None))

    def signature_problem(self, cls: type) -> str | None:
        """Why make() cannot call the class, or None (also when Python cannot tell)."""
        try:
            sig = inspect.signature(cls)
        except (TypeError, ValueError):
            return None
        try:
            self.probe(sig)
        except TypeError as exc:
            return f"{cls.__name__}{sig} cannot be called as {self.call}: {exc}"
        return None


def _named(exc: BaseException, *names: str) -> bool:
    return any(k.__name__ in names for k in type(exc).__mro__)


def _library_error(exc: BaseException, library: str, name: str) -> bool:
    return any(k.__name__ == name and k.__module__.split(".")[0] == library
               for k in type(exc).__mro__)


# -- native -------------------------------------------------------------------------------

def _build_native(cls: type, maxsize: int, block: bool, timeout: float | None,
                  factory: Factory) -> Any:
    return cls(HOST, PORT, maxsize=maxsize, block=block, timeout=timeout,
               connection_factory=factory)


# -- urllib3 ------------------------------------------------------------------------------

class _HeldConnection:
    """What a urllib3-style pool holds: the checker's connection, plus what urllib3 reads."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @property
    def is_connected(self) -> bool:
        return not getattr(self.conn, "closed", False)

    def close(self) -> None:
        self.conn.close()

    def __getattr__(self, name: str) -> Any:
        if name == "conn":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.conn, name)

    def __repr__(self) -> str:
        return repr(self.conn)


def _connection_class(base: Any, make: Callable[[], object]) -> type:
    """A ConnectionCls whose construction, with any arguments, makes a checker connection.

    It subclasses the pool's own ConnectionCls when it can, so class attributes the pool
    may read (``default_port``...) are still there; ``__init__`` never runs, as ``__new__``
    returns an object of another class."""
    def __new__(klass: type, *args: object, **kwargs: object) -> object:
        return make()

    namespace = {"__new__": __new__, "__doc__": "made by poolcheck's urllib3 adapter"}
    if isinstance(base, type):
        with contextlib.suppress(TypeError):
            made: type = type(base)("PoolcheckConnection", (base,), namespace)
            return made
    return type("PoolcheckConnection", (), namespace)


def _construct_with(cls: type, hooks: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)``, with instance attributes ``hooks`` in place before
    ``__init__`` runs (and again after, should ``__init__`` have set its own)."""
    klass: Any = cls
    try:
        pool = klass.__new__(klass)
    except TypeError:  # a __new__ that wants the arguments: hooks only after __init__
        pool = cls(*args, **kwargs)
    else:
        for name, value in hooks.items():
            setattr(pool, name, value)
        if isinstance(pool, cls):
            type(pool).__init__(pool, *args, **kwargs)
    for name, value in hooks.items():
        if getattr(pool, name, None) is not value:
            setattr(pool, name, value)
    return pool


def makes_connections(cls: type) -> bool:
    """Can the urllib3 adapter give this class the checker's connections?"""
    return hasattr(cls, "ConnectionCls") or callable(getattr(cls, "_new_conn", None))


class Urllib3Adapter:
    """The native interface over a urllib3-style pool (``_get_conn``/``_put_conn``)."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        self._factory = factory
        self._timeout = timeout
        self._held: dict[int, _HeldConnection] = {}  # id(connection) -> its wrapper
        hooks: dict[str, Any] = (
            {"ConnectionCls": _connection_class(cls.ConnectionCls, self._new)}
            if hasattr(cls, "ConnectionCls") else {"_new_conn": self._new})
        self.pool = _construct_with(cls, hooks, HOST, PORT, maxsize=maxsize, block=block)

    def _new(self) -> _HeldConnection:
        held = _HeldConnection(self._factory())
        self._held[id(held.conn)] = held
        return held

    def get_conn(self, timeout: float | None = None) -> Any:
        try:
            conn = self.pool._get_conn(timeout=self._timeout if timeout is None else timeout)
        except BaseException as exc:
            if not _named(exc, "EmptyPoolError", "ClosedPoolError"):
                self.pool._put_conn(None)  # give the slot back, as urlopen does
            raise
        return conn.conn if isinstance(conn, _HeldConnection) else conn

    def put_conn(self, conn: Any) -> None:
        held = None if conn is None else self._held.get(id(conn))
        self.pool._put_conn(conn if held is None else held)

    def close(self) -> None:
        close = getattr(self.pool, "close", None)
        if callable(close):
            close()


# -- urllib3's urlopen --------------------------------------------------------------------

URLOPEN_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _ResponseSocket:
    """What ``http.client.HTTPResponse`` reads an answer from: one empty 200."""

    def makefile(self, mode: str, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(URLOPEN_RESPONSE)


class _UrlopenConnection:
    """urllib3's ``HTTPConnection`` as ``urlopen`` uses it: a reusable object whose socket
    is one of the checker's connections, opened when a request is sent and there is none
    (as http.client's ``auto_open`` does after ``close()``), closed and forgotten by
    ``close()``. The answer to every request is an empty 200 (keep-alive)."""

    proxy = None  # urllib3 2 reads these on its error path
    has_connected_to_proxy = False
    auto_open = 1  # urllib3 1.x: a dropped connection is reused, not replaced
    _http_vsn_str = "HTTP/1.1"

    def __init__(self, adapter: UrlopenAdapter) -> None:
        self._adapter = adapter
        self.conn: Any = None  # the socket: a checker connection, or None
        self.timeout: Any = None
        self._request: tuple[str, str, dict[str, Any]] | None = None

    @property
    def is_closed(self) -> bool:  # urllib3 2: ``sock is None``
        return self.conn is None

    @property
    def is_connected(self) -> bool:  # urllib3 2: a socket, and the peer has not hung up
        return self.conn is not None and not getattr(self.conn, "closed", False)

    def request(self, method: str, url: str, body: object = None, headers: object = None,
                **options: Any) -> None:
        if self.conn is None:
            self.conn = self._adapter._connect()  # where the factory is called: connect
        self._adapter._fault("send")
        self._request = (method, url, options)

    def request_chunked(self, method: str, url: str, body: object = None,
                        headers: object = None) -> None:
        self.request(method, url, body, headers)

    def getresponse(self, *args: object, **kwargs: object) -> Any:
        if self._request is None:
            raise AdapterError("urlopen read a response with no request sent")
        method, url, options = self._request
        self._request = None
        self._adapter._fault("read")
        raw = http.client.HTTPResponse(_ResponseSocket(), method=method)  # type: ignore[arg-type]
        raw.begin()
        if not self._adapter.modern:  # urllib3 1.x wraps it itself (from_httplib)
            return raw
        return self._adapter._response(raw, method, url, options)

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and not getattr(conn, "closed", False):
            conn.close()  # as for a socket, closing a closed one does nothing

    def __repr__(self) -> str:
        return f"<urllib3 connection over {self.conn!r}>"


class UrlopenAdapter:
    """The native interface over urllib3's public request path: a checkout is a response
    from ``urlopen`` held open (``preload_content=False, release_conn=False``)."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        self._factory = factory
        self._timeout = timeout
        self._raised: dict[int, BaseException] = {}  # what the fake connections raised
        self._library = cls.__module__.split(".")[0]
        make_request: Any = getattr(cls, "_make_request", None)
        try:  # urllib3 2 (response_conn=): the connection builds urllib3's HTTPResponse
            self.modern = "response_conn" in inspect.signature(make_request).parameters
        except (TypeError, ValueError):
            self.modern = True
        hooks: dict[str, Any] = (
            {"ConnectionCls": _connection_class(cls.ConnectionCls, self._new)}
            if hasattr(cls, "ConnectionCls") else {"_new_conn": self._new})
        self.pool = _construct_with(cls, hooks, HOST, PORT, maxsize=maxsize, block=block)
        self._out = _CheckedOut()

    def _new(self) -> _UrlopenConnection:
        return _UrlopenConnection(self)

    def _connect(self) -> Any:
        try:
            return self._factory()
        except BaseException as exc:
            self._raised[id(exc)] = exc
            raise

    def _fault(self, point: str) -> None:
        fault = getattr(self._factory, "fault", None)
        if fault is None:
            return
        try:
            fault(point)
        except BaseException as exc:
            self._raised[id(exc)] = exc
            raise

    def _response(self, raw: http.client.HTTPResponse, method: str, url: str,
                  options: dict[str, Any]) -> Any:
        """urllib3 2's ``HTTPConnection.getresponse()``: urllib3's ``HTTPResponse`` around
        the http.client response, given what this urllib3 version's constructor accepts."""
        response_cls = getattr(self.pool, "ResponseCls", None) or importlib.import_module(
            f"{self._library}.response").HTTPResponse  # what urllib3 2's connection imports
        offered: dict[str, Any] = {
            "body": raw, "headers": dict(raw.getheaders()), "status": raw.status,
            "version": raw.version, "version_string": "HTTP/1.1", "reason": raw.reason,
            "original_response": raw, "request_method": method, "request_url": url,
            **{k: options[k] for k in ("preload_content", "decode_content",
                                       "enforce_content_length") if k in options}}
        try:
            accepted = inspect.signature(response_cls).parameters
        except (TypeError, ValueError):
            return response_cls(**offered)
        if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            return response_cls(**offered)
        return response_cls(**{k: v for k, v in offered.items() if k in accepted})

    def _injected(self, exc: BaseException) -> BaseException | None:
        """What a fake connection raised, behind ``exc``: ``exc`` itself, or the error
        urllib3's ``ProtocolError("Connection aborted.", error)`` wraps."""
        if self._raised.pop(id(exc), None) is exc:
            return exc
        if _library_error(exc, self._library, "ProtocolError") and len(exc.args) == 2:
            inner = exc.args[1]
            if isinstance(inner, BaseException) and self._raised.pop(id(inner), None) is inner:
                return inner
        return None

    def get_conn(self, timeout: float | None = None) -> Any:
        try:
            response = self.pool.urlopen(
                "GET", "/", preload_content=False, release_conn=False, retries=False,
                pool_timeout=self._timeout if timeout is None else timeout)
        except BaseException as exc:
            injected = self._injected(exc)
            if injected is not None and injected is not exc:
                raise injected from exc
            raise
        held = response.connection
        conn = held.conn if isinstance(held, _UrlopenConnection) else held
        self._out.add(conn, response)
        return conn

    def put_conn(self, conn: Any) -> None:
        response = self._out.take(conn)
        if conn is None:  # the caller found it broken and closed it: as urllib3 does
            response.close()  # when reading a body fails: close, then release
        response.release_conn()

    def close(self) -> None:
        close = getattr(self.pool, "close", None)
        if callable(close):
            close()


# -- per-call timeouts (redis, sqlalchemy) --------------------------------------------------

class _PerCallTimeout:
    """A data descriptor for the attribute a pool reads its timeout from: the value the
    calling thread set for this pool with ``during``, else the pool's own value."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.local = threading.local()

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        calls: dict[int, float] | None = getattr(self.local, "calls", None)
        if calls and id(obj) in calls:
            return calls[id(obj)]
        return obj.__dict__[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value

    @contextlib.contextmanager
    def during(self, obj: Any, timeout: float | None) -> Iterator[None]:
        if timeout is None:  # the pool's own timeout
            yield
            return
        calls = self.local.__dict__.setdefault("calls", {})
        calls[id(obj)] = timeout
        try:
            yield
        finally:
            calls.pop(id(obj), None)


class _PerTaskTimeout(_PerCallTimeout):
    """``_PerCallTimeout`` for an asyncio pool, whose callers are tasks of one thread: the
    value the calling task set with ``during`` (a context variable: each task runs in a
    context of its own), else the pool's own value."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: contextvars.ContextVar[dict[int, float] | None] = contextvars.ContextVar(
            f"poolcheck_{name}", default=None)  # never mutated: each during() sets a copy

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        calls = self.calls.get()
        if calls and id(obj) in calls:
            return calls[id(obj)]
        return obj.__dict__[self.name]

    @contextlib.contextmanager
    def during(self, obj: Any, timeout: float | None) -> Iterator[None]:
        if timeout is None:  # the pool's own timeout
            yield
            return
        token = self.calls.set({**(self.calls.get() or {}), id(obj): timeout})
        try:
            yield
        finally:
            self.calls.reset(token)


_TIMED: dict[tuple[type, str, type], type] = {}


def _with_per_call_timeout(cls: type, attr: str, per: type[_PerCallTimeout] = _PerCallTimeout
                           ) -> tuple[type, _PerCallTimeout]:
    key = (cls, attr, per)
    if key not in _TIMED:
        caller = "task" if per is _PerTaskTimeout else "thread"
        _TIMED[key] = type(cls)(cls.__name__, (cls,), {
            attr: per(attr), "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": f"{cls.__qualname__}, with {attr} per calling {caller} (poolcheck)"})
    descriptor = _TIMED[key].__dict__[attr]
    assert isinstance(descriptor, per)
    return _TIMED[key], descriptor


class _CheckedOut:
    """Which library handle each connection the checker holds came from.

    Plain dict operations, atomic under the GIL: no lock of the adapter's own. ``who``
    names the caller: its thread, or for an asyncio pool its task."""

    def __init__(self, who: Callable[[], object] = threading.get_ident) -> None:
        self._who = who
        self._out: dict[int, tuple[Any, Any, object]] = {}  # id(conn) -> (conn, handle, who)

    def add(self, conn: Any, handle: Any) -> None:
        self._out[id(conn)] = (conn, handle, self._who())

    def take(self, conn: Any) -> Any:
        """The handle of ``conn`` (None: the broken connection the caller closed)."""
        if conn is not None:
            entry = self._out.pop(id(conn), None)
            if entry is not None:
                return entry[1]
            if not getattr(conn, "closed", False):
                raise AdapterError(f"put_conn({conn!r}): not checked out through the adapter")
        me = self._who()
        entries = list(self._out.copy().items())
        candidates = [e for e in reversed(entries) if e[1][2] == me] + [
            e for e in reversed(entries) if e[1][2] != me]
        for key, (held, handle, _) in candidates:
            if getattr(held, "closed", False) and self._out.pop(key, None) is not None:
                return handle
        raise AdapterError(f"put_conn({conn!r}): no connection checked out through the "
                           "adapter is closed, so it cannot tell which one broke")


def _current_task() -> object:
    """Who checks a connection out in an asyncio pool: the task (None outside one)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


# -- redis --------------------------------------------------------------------------------

class _RedisConnectionBase:
    """What the sync and asyncio fake redis connections share: the socket (one of the
    checker's connections), the fault point of constructing one, and the checks redis
    makes that need no I/O."""

    def __init__(self, poolcheck_factory: Any, **kwargs: object) -> None:
        self._factory = poolcheck_factory
        self.kwargs = kwargs
        self.conn: Any = None
        self.pid = os.getpid()
        fault = self._fault_point(poolcheck_factory)
        if fault is not None:  # constructing one can fail too (bad options, SSL setup)
            fault("constructing the redis connection")

    @staticmethod
    def _fault_point(factory: Any) -> Callable[[str], None] | None:
        return getattr(factory, "fault", None)

    def _needs_socket(self) -> bool:
        return self.conn is None or getattr(self.conn, "closed", False)

    def _close_socket(self) -> None:
        if self.conn is not None and not getattr(self.conn, "closed", False):
            self.conn.close()

    def should_reconnect(self) -> bool:
        return False

    def is_ready_for_command(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<redis connection over {self.conn!r}>"


class _RedisConnection(_RedisConnectionBase):
    """A redis-py connection whose socket is one of the checker's connections."""

    def connect(self, *args: object, **kwargs: object) -> None:
        if self._needs_socket():
            self.conn = self._factory()

    def disconnect(self, *args: object, **kwargs: object) -> None:
        self._close_socket()

    def can_read(self, *args: object, **kwargs: object) -> bool:
        return False

    def on_connect(self) -> None:
        pass

    def check_health(self) -> None:
        pass


REDIS_EMPTY = "No connection available."


def _redis_empty(exc: Exception) -> None:
    """Raise redis's timeout (exactly its ``ConnectionError``) as ``EmptyPoolError``."""
    if _named(exc, "ConnectionError") and str(exc) == REDIS_EMPTY:
        raise EmptyPoolError(f"redis: {exc}") from exc


def _redis_blocks(cls: type, block: bool) -> None:
    if not block:
        raise NotApplicable(f"{cls.__name__} always blocks: block=False has no "
                            "equivalent")


def _redis_command(cls: type) -> tuple[str, ...]:
    """What ``get_connection`` needs: redis-py before 5.3 requires a command name (which
    only a cluster uses), later releases deprecate it."""
    method: Callable[..., Any] = cls.get_connection  # type: ignore[attr-defined]
    try:
        params = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):
        return ()
    required = params and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) and (
        params[0].default is inspect.Parameter.empty)
    return ("PING",) if required else ()


class RedisAdapter:
    """The native interface over redis-py's BlockingConnectionPool."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        _redis_blocks(cls, block)
        timed, self._timeout = _with_per_call_timeout(cls, "timeout")
        self.pool = timed(max_connections=maxsize, timeout=timeout,
                          connection_class=_RedisConnection, poolcheck_factory=factory)
        self._out = _CheckedOut()
        self._command = _redis_command(cls)

    def get_conn(self, timeout: float | None = None) -> Any:
        with self._timeout.during(self.pool, timeout):
            try:
                redis_conn = self.pool.get_connection(*self._command)
            except Exception as exc:
                _redis_empty(exc)
                raise
        conn = redis_conn.conn if isinstance(redis_conn, _RedisConnection) else redis_conn
        self._out.add(conn, redis_conn)
        return conn

    def put_conn(self, conn: Any) -> None:
        self.pool.release(self._out.take(conn))

    def close(self) -> None:
        self.pool.disconnect()


# -- redis-async --------------------------------------------------------------------------

class _RedisAsyncConnection(_RedisConnectionBase):
    """A ``redis.asyncio`` connection whose socket is one of the checker's connections:
    ``connect()`` awaits ``connect()``, the checker's coroutine function. Nothing else
    awaits (a real ``can_read`` polls a socket that is never readable here)."""

    async def connect(self, *args: object, **kwargs: object) -> None:
        if self._needs_socket():
            self.conn = await self._factory()

    async def disconnect(self, *args: object, **kwargs: object) -> None:
        self._close_socket()

    async def can_read(self, *args: object, **kwargs: object) -> bool:
        return False

    async def can_read_destructive(self, *args: object, **kwargs: object) -> bool:
        return False  # what redis.asyncio before 5.1 asks of a connection taken from the queue

    async def on_connect(self) -> None:
        pass

    async def check_health(self) -> None:
        pass

    async def re_auth(self) -> None:  # after each release; no token here: nothing to send
        pass


class RedisAsyncAdapter:
    """The native asyncio interface over ``redis.asyncio.BlockingConnectionPool``."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 connect: Callable[[], Awaitable[Any]]) -> None:
        _redis_blocks(cls, block)
        timed, self._timeout = _with_per_call_timeout(cls, "timeout", _PerTaskTimeout)
        self.pool = timed(max_connections=maxsize, timeout=timeout,
                          connection_class=_RedisAsyncConnection, poolcheck_factory=connect)
        self._out = _CheckedOut(who=_current_task)
        self._command = _redis_command(cls)

    async def get_conn(self, timeout: float | None = None) -> Any:
        with self._timeout.during(self.pool, timeout):
            try:
                redis_conn = await self.pool.get_connection(*self._command)
            except Exception as exc:
                _redis_empty(exc)
                raise
        conn = redis_conn.conn if isinstance(redis_conn, _RedisAsyncConnection) else redis_conn
        self._out.add(conn, redis_conn)
        return conn

    async def put_conn(self, conn: Any) -> None:
        await self.pool.release(self._out.take(conn))

    async def close(self) -> None:
        await self.pool.disconnect()


# -- sqlalchemy ---------------------------------------------------------------------------

class _DBAPIConnection:
    """A DB-API connection for SQLAlchemy's pool, around one of the checker's."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def rollback(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<DB-API connection over {self.conn!r}>"


class SQLAlchemyAdapter:
    """The native interface over SQLAlchemy's QueuePool."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        timed, self._timeout = _with_per_call_timeout(cls, "_timeout")

        def creator() -> _DBAPIConnection:
            return _DBAPIConnection(factory())

        self.pool = timed(creator, pool_size=maxsize, max_overflow=0 if block else -1,
                          timeout=timeout)
        self._out = _CheckedOut()

    def get_conn(self, timeout: float | None = None) -> Any:
        with self._timeout.during(self.pool, timeout):
            try:
                fairy = self.pool.connect()
            except Exception as exc:
                if _library_error(exc, "sqlalchemy", "TimeoutError"):
                    raise EmptyPoolError(f"sqlalchemy: {exc}") from exc
                raise
        dbapi = fairy.dbapi_connection
        conn = dbapi.conn if isinstance(dbapi, _DBAPIConnection) else dbapi
        self._out.add(conn, fairy)
        return conn

    def put_conn(self, conn: Any) -> None:
        fairy = self._out.take(conn)
        if conn is None:
            fairy.invalidate()
        else:
            fairy.close()

    def close(self) -> None:
        self.pool.dispose()


# -- httpcore -----------------------------------------------------------------------------

HTTPCORE_URL = f"http://{HOST}:{PORT}/"
HTTPCORE_HEADERS = [(b"Host", f"{HOST}:{PORT}".encode())]  # h11 requires one; httpx adds it
HTTPCORE_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _HttpcoreServer:
    """The far end of a fake httpcore stream over one of the checker's connections: a
    keep-alive HTTP/1.1 server that answers every request at once with an empty 200. It
    never blocks and never touches the network. Shared by the sync and async streams."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._owed = 0  # requests written and not yet answered

    def _wrote(self, buffer: bytes) -> None:
        if buffer.split(b"\r\n", 1)[0].endswith(b" HTTP/1.1"):  # a request line
            self._owed += 1

    def _answer(self, max_bytes: int) -> bytes:
        if getattr(self.conn, "closed", False):
            return b""  # the peer's end of a closed connection: EOF
        if not self._owed:  # a real socket would block: httpcore never asks for this
            raise AdapterError(f"httpcore read from {self.conn!r} with no request "
                               "outstanding")
        self._owed -= 1
        return HTTPCORE_RESPONSE[:max_bytes]

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # an idle socket is readable when its peer closed it
            return bool(getattr(self.conn, "closed", False))
        return None

    def __repr__(self) -> str:
        return f"<httpcore stream over {self.conn!r}>"


class _HttpcoreStream(_HttpcoreServer):
    """httpcore's ``NetworkStream`` interface over one of the checker's connections."""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._wrote(buffer)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._answer(max_bytes)

    def close(self) -> None:
        self.conn.close()

    def start_tls(self, *args: object, **kwargs: object) -> Any:
        raise AdapterError("the httpcore adapter speaks plain http only")


class _HttpcoreBackend:
    """httpcore's ``NetworkBackend`` interface: ``connect_tcp`` calls the factory."""

    def __init__(self, factory: Factory) -> None:
        self._factory = factory

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: object = None) -> _HttpcoreStream:
        return _HttpcoreStream(self._factory())

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: object = None) -> _HttpcoreStream:
        return _HttpcoreStream(self._factory())

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _HttpcorePool:
    """What the sync and async httpcore adapters share: how the pool is built, the request
    a checkout sends, its pool timeout, and which connection a response holds."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 backend: object, who: Callable[[], object] = threading.get_ident) -> None:
        if not block:
            raise NotApplicable(f"{cls.__name__} always waits for a connection: "
                                "block=False has no equivalent")
        import httpcore  # only here: the adapter needs it, the rest of poolcheck does not

        self._request = httpcore.Request
        self._timeout = timeout
        self.pool = cls(max_connections=maxsize, max_keepalive_connections=maxsize,
                        network_backend=backend)
        self._out = _CheckedOut(who)

    def _checkout_request(self, timeout: float | None) -> Any:
        pool_timeout = self._timeout if timeout is None else timeout
        return self._request("GET", HTTPCORE_URL, headers=HTTPCORE_HEADERS,
                             extensions={"timeout": {"pool": pool_timeout}})

    @staticmethod
    def _pool_timeout(exc: Exception) -> None:
        """httpcore's ``PoolTimeout`` as ``EmptyPoolError``; anything else unchanged."""
        if _library_error(exc, "httpcore", "PoolTimeout"):
            raise EmptyPoolError(f"httpcore: {exc!r}") from exc

    def _held(self, response: Any) -> Any:
        """The checker's connection behind a response held open, which is the checkout."""
        stream = response.extensions.get("network_stream")
        conn = stream.conn if isinstance(stream, _HttpcoreServer) else stream
        self._out.add(conn, response)
        return conn


class HttpcoreAdapter(_HttpcorePool):
    """The native interface over httpcore's sync ConnectionPool: a checkout is a response
    held open."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        super().__init__(cls, maxsize, block, timeout, _HttpcoreBackend(factory))

    def get_conn(self, timeout: float | None = None) -> Any:
        request = self._checkout_request(timeout)
        try:
            response = self.pool.handle_request(request)
        except Exception as exc:
            self._pool_timeout(exc)
            raise
        response.read()  # the empty body; the response stays open: the checkout
        return self._held(response)

    def put_conn(self, conn: Any) -> None:
        self._out.take(conn).close()

    def close(self) -> None:
        self.pool.close()


# -- httpcore-async -----------------------------------------------------------------------

class _HttpcoreAsyncStream(_HttpcoreServer):
    """httpcore's ``AsyncNetworkStream`` interface over one of the checker's connections.
    Each call passes through the event loop once, as anyio's socket streams do (a
    checkpoint: a cancellation can arrive there), and none waits for anything."""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await asyncio.sleep(0)
        self._wrote(buffer)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await asyncio.sleep(0)
        return self._answer(max_bytes)

    async def aclose(self) -> None:
        self.conn.close()
        await asyncio.sleep(0)

    async def start_tls(self, *args: object, **kwargs: object) -> Any:
        raise AdapterError("the httpcore adapter speaks plain http only")


class _HttpcoreAsyncBackend:
    """httpcore's ``AsyncNetworkBackend`` interface: ``connect_tcp`` awaits ``connect()``,
    the checker's coroutine function."""

    def __init__(self, connect: Callable[[], Awaitable[Any]]) -> None:
        self._connect = connect

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: object = None) -> _HttpcoreAsyncStream:
        return _HttpcoreAsyncStream(await self._connect())

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: object = None) -> _HttpcoreAsyncStream:
        return _HttpcoreAsyncStream(await self._connect())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class HttpcoreAsyncAdapter(_HttpcorePool):
    """The native asyncio interface over httpcore's AsyncConnectionPool: a checkout is a
    response held open."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 connect: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(cls, maxsize, block, timeout, _HttpcoreAsyncBackend(connect),
                         who=_current_task)

    async def get_conn(self, timeout: float | None = None) -> Any:
        request = self._checkout_request(timeout)
        try:
            response = await self.pool.handle_async_request(request)
        except Exception as exc:
            self._pool_timeout(exc)
            raise
        try:
            await response.aread()  # the empty body; the response stays open: the checkout
        except BaseException:  # cancelled while reading: closed, as httpx and httpcore's
            await response.aclose()  # own request() do (httpcore closed it already)
            raise
        return self._held(response)

    async def put_conn(self, conn: Any) -> None:
        await self._out.take(conn).aclose()

    async def close(self) -> None:
        await self.pool.aclose()


# -- psycopg_pool -------------------------------------------------------------------------

class ClosedPoolError(Exception):
    """A library's "the pool is closed", under the contract's name."""


# psycopg_pool's getconn has no "wait for ever": the longest wait threading accepts, halved
# so that "now + timeout" stays within it.
PSYCOPG_FOREVER = threading.TIMEOUT_MAX / 2


class _PsycopgPgconn:
    """The part of ``psycopg.pq.PGconn`` (and of ``conn.info``) psycopg_pool reads."""

    def __init__(self, owner: _PsycopgConnection) -> None:
        self._owner = owner

    @property
    def transaction_status(self) -> Any:
        from psycopg.pq import TransactionStatus  # psycopg_pool imports it anyway

        return TransactionStatus.UNKNOWN if self._owner.closed else TransactionStatus.IDLE


class _PsycopgConnection:
    """A psycopg ``Connection`` over one of the checker's connections: what psycopg_pool
    calls of its ``connection_class`` and of the connections it makes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pgconn = self.info = _PsycopgPgconn(self)
        self.autocommit = False
        self.broken = False
        self._pool: Any = None  # psycopg_pool sets and checks these
        self._created_at = self._expire_at = 0.0

    @classmethod
    def connect(cls, conninfo: str = "", *, poolcheck_factory: Factory,
                **kwargs: object) -> _PsycopgConnection:
        return cls(poolcheck_factory())

    @property
    def closed(self) -> bool:
        return bool(getattr(self.conn, "closed", False))

    def close(self) -> None:
        if not self.closed:  # as psycopg's: closing a closed connection does nothing
            self.conn.close()

    def rollback(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"<psycopg connection over {self.conn!r}>"


class PsycopgPoolAdapter:
    """The native interface over psycopg_pool's sync ConnectionPool (psycopg 3)."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        if not block:
            raise NotApplicable(f"{cls.__name__} always waits for a connection: "
                                "block=False has no equivalent")
        self.pool = cls("", connection_class=_PsycopgConnection,
                        kwargs={"poolcheck_factory": factory}, min_size=0,
                        max_size=maxsize,
                        timeout=PSYCOPG_FOREVER if timeout is None else timeout, open=True)
        self._out = _CheckedOut()

    def get_conn(self, timeout: float | None = None) -> Any:
        try:
            psycopg_conn = self.pool.getconn(timeout)
        except Exception as exc:
            if _library_error(exc, "psycopg_pool", "PoolTimeout"):
                raise EmptyPoolError(f"psycopg_pool: {exc}") from exc
            if _library_error(exc, "psycopg_pool", "PoolClosed"):
                raise ClosedPoolError(f"psycopg_pool: {exc}") from exc
            raise
        conn = (psycopg_conn.conn if isinstance(psycopg_conn, _PsycopgConnection)
                else psycopg_conn)
        self._out.add(conn, psycopg_conn)
        return conn

    def put_conn(self, conn: Any) -> None:
        # put_conn(None): the connection the caller closed, which psycopg_pool then sees
        # closed (transaction status UNKNOWN), as after a caller's conn.close()
        self.pool.putconn(self._out.take(conn))

    def close(self) -> None:
        self.pool.close()


# -- dbutils ------------------------------------------------------------------------------

class _DBAPIError(Exception):
    """The fake DB-API module's ``Error``."""


class _DBAPIInterfaceError(_DBAPIError):
    pass


class _DBAPIOperationalError(_DBAPIError):
    pass


class _DBAPIInternalError(_DBAPIError):
    pass


class _DBUtilsConnection:
    """A DB-API 2 connection over one of the checker's: as drivers do, every operation on
    a closed one raises ``InterfaceError``, and closing it again does nothing."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _open(self) -> None:
        if getattr(self.conn, "closed", False):
            raise _DBAPIInterfaceError("connection already closed")

    def close(self) -> None:
        if not getattr(self.conn, "closed", False):
            self.conn.close()

    def ping(self, *args: object) -> bool:
        self._open()
        return True

    def rollback(self) -> None:
        self._open()

    def commit(self) -> None:
        self._open()

    def __repr__(self) -> str:
        return f"<DB-API connection over {self.conn!r}>"


class _DBAPIModule:
    """What DBUtils reads of a DB-API 2 module given as its ``creator``."""

    apilevel = "2.0"
    threadsafety = 1  # threads may share the module, not connections: no shared ones
    paramstyle = "qmark"
    Error = _DBAPIError
    InterfaceError = _DBAPIInterfaceError
    OperationalError = _DBAPIOperationalError
    InternalError = _DBAPIInternalError

    def __init__(self, factory: Factory) -> None:
        self._factory = factory

    def connect(self, *args: object, **kwargs: object) -> _DBUtilsConnection:
        return _DBUtilsConnection(self._factory())


class DBUtilsAdapter:
    """The native interface over DBUtils' PooledDB (dedicated connections)."""

    def __init__(self, cls: type, maxsize: int, block: bool, timeout: float | None,
                 factory: Factory) -> None:
        self._block, self._timeout = block, timeout
        # blocking=True waits for ever, blocking=False refuses at once: per call, the one
        # the timeout asks for (a finite one, as 0), through the attribute read per wait
        timed, self._blocking = _with_per_call_timeout(cls, "_blocking")
        self.pool = timed(creator=_DBAPIModule(factory), mincached=0, maxcached=maxsize,
                          maxshared=0, maxconnections=maxsize if block else 0,
                          blocking=block and timeout is None)
        self._out = _CheckedOut()

    def get_conn(self, timeout: float | None = None) -> Any:
        waits = self._block and (self._timeout if timeout is None else timeout) is None
        with self._blocking.during(self.pool, waits):
            try:
                pooled = self.pool.connection()
            except Exception as exc:
                # (named TooManyConnections before DBUtils 3.1)
                if any(_library_error(exc, "dbutils", name) for name in (
                        "TooManyConnectionsError", "TooManyConnections")):
                    raise EmptyPoolError(f"dbutils: {exc!r}") from exc
                raise
        raw = getattr(pooled, "dbapi_connection", None)  # the creator's, not SteadyDB's
        if raw is None:  # before DBUtils 3.1: the SteadyDB connection's own
            raw = getattr(getattr(pooled, "_con", None), "_con", pooled)
        conn = raw.conn if isinstance(raw, _DBUtilsConnection) else raw
        self._out.add(conn, pooled)
        return conn

    def put_conn(self, conn: Any) -> None:
        # put_conn(None): the wrapper of the connection the caller closed goes back too
        self._out.take(conn).close()

    def close(self) -> None:
        self.pool.close()


# -- the registry -------------------------------------------------------------------------

def _native_probe(sig: inspect.Signature) -> object:
    return sig.bind(HOST, PORT, maxsize=1, block=False, timeout=None, connection_factory=None)


def _urllib3_probe(sig: inspect.Signature) -> object:
    return sig.bind(HOST, PORT, maxsize=1, block=False)


def _redis_probe(sig: inspect.Signature) -> object:
    return sig.bind(max_connections=1, timeout=None, connection_class=_RedisConnection,
                    poolcheck_factory=None)


def _redis_async_probe(sig: inspect.Signature) -> object:
    return sig.bind(max_connections=1, timeout=None, connection_class=_RedisAsyncConnection,
                    poolcheck_factory=None)


def _sqlalchemy_probe(sig: inspect.Signature) -> object:
    return sig.bind(lambda: None, pool_size=1, max_overflow=0, timeout=None)


def _httpcore_probe(sig: inspect.Signature) -> object:
    return sig.bind(max_connections=1, max_keepalive_connections=1, network_backend=None)


def _psycopg_pool_probe(sig: inspect.Signature) -> object:
    return sig.bind("", connection_class=_PsycopgConnection, kwargs={}, min_size=0,
                    max_size=1, timeout=1.0, open=True)


def _dbutils_probe(sig: inspect.Signature) -> object:
    return sig.bind(creator=None, mincached=0, maxcached=1, maxshared=0, maxconnections=1,
                    blocking=True)


ADAPTERS: dict[str, Adapter] = {a.name: a for a in [
    Adapter("native", ("get_conn", "put_conn"), "close", BOTH, None, None,
            "(host, port, *, maxsize, block, timeout, connection_factory)", _native_probe,
            _build_native),
    # the native interface with ``async def get_conn`` (CONTRACT section 1): the same
    # constructor, given a coroutine function as connection_factory
    Adapter("asyncio", ("get_conn", "put_conn"), "close", BOTH, None, None,
            "(host, port, *, maxsize, block, timeout, connection_factory)", _native_probe,
            _build_native, asynchronous=True),
    Adapter("urllib3", ("_get_conn", "_put_conn"), "close", BOTH, None, None,
            "(host, port, maxsize=, block=)", _urllib3_probe, Urllib3Adapter),
    Adapter("urllib3-urlopen", ("urlopen", "_put_conn"), "close", BOTH, "urllib3",
            "urllib3:HTTPConnectionPool", "(host, port, maxsize=, block=)", _urllib3_probe,
            UrlopenAdapter),
    Adapter("redis", ("get_connection", "release", "disconnect"), "disconnect",
            BLOCKING_ONLY, "redis", "redis:BlockingConnectionPool",
            "(max_connections=, timeout=, connection_class=, **connection_kwargs)",
            _redis_probe, RedisAdapter),
    Adapter("redis-async", ("get_connection", "release", "disconnect"), "disconnect",
            BLOCKING_ONLY, "redis", "redis.asyncio:BlockingConnectionPool",
            "(max_connections=, timeout=, connection_class=, **connection_kwargs)",
            _redis_async_probe, RedisAsyncAdapter, asynchronous=True),
    Adapter("sqlalchemy", ("connect", "dispose"), "dispose", BOTH, "sqlalchemy",
            "sqlalchemy.pool:QueuePool", "(creator, pool_size=, max_overflow=, timeout=)",
            _sqlalchemy_probe, SQLAlchemyAdapter),
    Adapter("httpcore", ("handle_request", "close"), "close", BLOCKING_ONLY, "httpcore",
            "httpcore:ConnectionPool",
            "(max_connections=, max_keepalive_connections=, network_backend=)",
            _httpcore_probe, HttpcoreAdapter),
    Adapter("httpcore-async", ("handle_async_request", "aclose"), "aclose", BLOCKING_ONLY,
            "httpcore", "httpcore:AsyncConnectionPool",
            "(max_connections=, max_keepalive_connections=, network_backend=)",
            _httpcore_probe, HttpcoreAsyncAdapter, asynchronous=True, needs="anyio"),
    Adapter("psycopg_pool", ("getconn", "putconn", "close"), "close", BLOCKING_ONLY,
            "psycopg_pool", "psycopg_pool:ConnectionPool",
            "(conninfo, connection_class=, kwargs=, min_size=, max_size=, timeout=, open=)",
            _psycopg_pool_probe, PsycopgPoolAdapter),
    Adapter("dbutils", ("connection", "close"), "close", BOTH, "dbutils",
            "dbutils.pooled_db:PooledDB",
            "(creator=, mincached=, maxcached=, maxshared=, maxconnections=, blocking=)",
            _dbutils_probe, DBUtilsAdapter),
]}
AUTO = ("native", "urllib3")  # what --adapter auto tries, in this order


def missing_methods(adapter: Adapter, cls: type) -> list[str]:
    return [m for m in adapter.methods if not callable(getattr(cls, m, None))]


def detect(cls: type) -> str | None:
    """The adapter ``--adapter auto`` picks for the class, or None."""
    for name in AUTO:
        if not missing_methods(ADAPTERS[name], cls):
            if name == "native" and inspect.iscoroutinefunction(
                    getattr(cls, "get_conn", None)):
                return "asyncio"
            return name
    return None
