"""Adapters: urllib3-style pools are detected and checked; urllib3, redis, SQLAlchemy,
httpcore, psycopg_pool and DBUtils pools are driven through theirs; bad input is one clear
line."""

from __future__ import annotations

import dataclasses
import http.client
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from poolcheck.app.cli import main
from poolcheck.errors import LoadError
from poolcheck.load import adapters
from poolcheck.load.targets import Target, load
from poolcheck.observe.recording import (
    WAIT_INTERRUPTED,
    ConnectFailed,
    Interrupted,
    RecordingFactory,
    contract_error,
)
from poolcheck.run.checks import run_checks
from poolcheck.run.parallel import Program
from poolcheck.settings import PROFILES

TINY = dataclasses.replace(PROFILES["quick"], name="tiny", examples=10, steps=12)
SEQUENTIAL = ["sequential/errors", "sequential/bound", "sequential/no-leak",
              "sequential/capacity", "sequential/closed"]
SEQUENTIAL_ALL = [*SEQUENTIAL, "sequential/deadlock-free", "sequential/exclusive",
                  "sequential/timeout"]


class EmptyPoolError(Exception):
    pass


class ClosedPoolError(Exception):
    pass


class BuildsItsOwn:
    """A correct pool in urllib3's style: a LifoQueue of connections and None slots.
    It has no ConnectionCls: _new_conn builds http.client.HTTPConnection itself."""

    def __init__(self, host: str, port: int | None = None, timeout: float | None = None,
                 maxsize: int = 1, block: bool = False) -> None:
        self.host, self.port, self.timeout, self.block = host, port, timeout, block
        self.pool: queue.LifoQueue[Any] | None = queue.LifoQueue(maxsize)
        for _ in range(maxsize):
            self.pool.put(None)

    def _new_conn(self) -> Any:
        return http.client.HTTPConnection(self.host, self.port)

    def _get_conn(self, timeout: float | None = None) -> Any:
        pool = self.pool
        if pool is None:
            raise ClosedPoolError("closed")
        conn = None
        try:
            conn = pool.get(block=self.block, timeout=timeout)
        except queue.Empty:
            if self.block:
                raise EmptyPoolError("empty") from None
        return conn or self._new_conn()

    def _put_conn(self, conn: Any) -> None:
        pool = self.pool
        if pool is not None:
            try:
                pool.put(conn, block=False)
                return
            except queue.Full:
                pass
        if conn:
            conn.close()

    def close(self) -> None:
        old, self.pool = self.pool, None
        while old is not None and not old.empty():
            conn = old.get(block=False)
            if conn:
                conn.close()


class LearnerPool(BuildsItsOwn):
    """The same, with its connections made from ConnectionCls, as urllib3 does."""

    ConnectionCls: Any = http.client.HTTPConnection

    def _new_conn(self) -> Any:
        return self.ConnectionCls(host=self.host, port=self.port, timeout=self.timeout)


class LosesSlotOnNone(LearnerPool):
    """The bug: a broken connection's slot is never given back."""

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            super()._put_conn(conn)


class ConnectsEagerly(LearnerPool):
    """Fills its queue with connections in __init__."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self.pool is not None
        self.pool.get()
        self.pool.put(self._new_conn())


class NoInterface:
    def fetch(self) -> None:
        pass


def test_auto_detects_urllib3_style() -> None:
    target = load("tests.test_adapters:LearnerPool")
    assert (target.adapter, target.has_close, target.modes) == ("urllib3", True,
                                                                adapters.BOTH)
    assert Target.of(LearnerPool).adapter == "urllib3"
    assert load("poolcheck.pool:Pool").adapter == "native"


def test_urllib3_style_pool_passes() -> None:
    results = run_checks(Target.of(LearnerPool), TINY, 1, only=SEQUENTIAL)
    assert {r.name: r.status for r in results} == dict.fromkeys(SEQUENTIAL, "passed"), [
        r.message for r in results if r.status != "passed"]


def test_urllib3_style_bug_is_named() -> None:
    [result] = run_checks(Target.of(LosesSlotOnNone), TINY, 1, only=["sequential/capacity"])
    assert result.status == "failed", result.message
    # a lost slot: a broken connection's, or a failed connect's the adapter gave back
    assert "raised EmptyPoolError with 0 idle" in result.message


@pytest.mark.parametrize("cls", [BuildsItsOwn, ConnectsEagerly])
def test_urllib3_style_connections_come_from_the_factory(cls: type) -> None:
    factory = RecordingFactory()
    pool = Target.of(cls).make(1, True, None, factory)
    conn = pool.get_conn()
    assert factory.owns(conn)
    pool.put_conn(conn)
    pool.close()
    assert conn.closed


class Spy(LearnerPool):
    puts: list[Any]

    def _put_conn(self, conn: Any) -> None:
        self.puts = [*getattr(self, "puts", []), conn]
        super()._put_conn(conn)


def test_urllib3_adapter_gives_slot_back_like_urlopen() -> None:
    factory = RecordingFactory()
    adapted = Target.of(Spy).make(1, True, None, factory)
    factory.fail_next = 1
    with pytest.raises(ConnectFailed):
        adapted.get_conn(timeout=0)
    assert adapted.pool.puts == [None]  # the slot the failed connect took
    conn = adapted.get_conn(timeout=0)
    with pytest.raises(EmptyPoolError):
        adapted.get_conn(timeout=0)
    assert adapted.pool.puts == [None]  # not after EmptyPoolError
    adapted.put_conn(conn)
    adapted.close()
    with pytest.raises(ClosedPoolError):
        adapted.get_conn()
    puts = adapted.pool.puts  # nor after ClosedPoolError
    assert len(puts) == 2 and puts[1].conn is conn  # the pool is given what it handed out


def _cycle(target: Target) -> RecordingFactory:
    """get, get, time out, put, break one (close + put_conn(None)), get again, close."""
    factory = RecordingFactory()
    pool = target.make(2, True, None, factory)
    first, second = pool.get_conn(timeout=0), pool.get_conn(timeout=0)
    assert factory.owns(first) and factory.owns(second) and first is not second
    with pytest.raises(Exception) as empty:
        pool.get_conn(timeout=0.01)
    assert contract_error(empty.value, factory) == "EmptyPoolError"
    pool.put_conn(first)
    second.close()
    pool.put_conn(None)
    again = pool.get_conn(timeout=0)
    assert again is first or not again.closed
    pool.put_conn(again)
    pool.close()
    assert factory.open_connections() == []
    return factory


def test_real_urllib3_pool() -> None:
    pytest.importorskip("urllib3")
    target = load("urllib3:HTTPConnectionPool")
    assert target.adapter == "urllib3"
    _cycle(target)


def test_real_redis_pool() -> None:
    pytest.importorskip("redis")
    target = load(None, "redis")
    assert (target.spec, target.modes) == ("redis:BlockingConnectionPool",
                                           adapters.BLOCKING_ONLY)
    _cycle(target)
    with pytest.raises(adapters.NotApplicable):
        target.make(1, False, None, RecordingFactory())


def test_real_redis_pool_timeout_is_per_call() -> None:
    pytest.importorskip("redis")
    pool = load(None, "redis").make(1, True, None, RecordingFactory())  # waits for ever
    conn = pool.get_conn()
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn(timeout=0.0)
    pool.put_conn(conn)


def test_real_sqlalchemy_pool() -> None:
    pytest.importorskip("sqlalchemy")
    target = load(None, "sqlalchemy")
    assert target.spec == "sqlalchemy.pool:QueuePool"
    _cycle(target)
    factory = RecordingFactory()
    pool = target.make(1, False, None, factory)  # max_overflow=-1: never waits
    first, second = pool.get_conn(), pool.get_conn()
    pool.put_conn(first)
    pool.put_conn(second)  # the pool is full: closed, not kept
    assert not first.closed and second.closed
    pool.close()


@pytest.mark.parametrize("adapter", ["redis", "sqlalchemy", "httpcore", "psycopg_pool",
                                     "dbutils"])
def test_missing_library_is_one_line_and_exit_2(adapter: str, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    # the target loads in a child process started with -I, so nothing here can hide the
    # library from it: a target whose import fails as if the library were missing can
    target = tmp_path / "needs_it.py"
    target.write_text(
        f"raise ModuleNotFoundError('No module named {adapter}', name={adapter!r})\n")
    assert main(["check", f"{target}:Pool", "--adapter", adapter]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install {adapter}" in err[0], err
    # and in this process, the adapter's default target without the library installed
    for name in [n for n in sys.modules if n.split(".")[0] == adapter] + [adapter]:
        monkeypatch.setitem(sys.modules, name, None)  # None: the import fails
    with pytest.raises(LoadError, match=f"pip install {adapter}"):
        load(None, adapter)


def test_class_with_neither_interface() -> None:
    with pytest.raises(LoadError, match=r"has no get_conn or put_conn.*urllib3's style"):
        load("tests.test_adapters:NoInterface")
    with pytest.raises(LoadError, match="--adapter redis needs get_connection"):
        load("tests.test_adapters:LearnerPool", "redis")


def test_wrong_constructor_for_the_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "tests.test_adapters:LearnerPool", "--adapter", "native"]) == 2
    assert "has no get_conn" in capsys.readouterr().err
    assert main(["check", "poolcheck.pool:Pool", "--adapter", "urllib3"]) == 2
    assert "has no _get_conn" in capsys.readouterr().err


def test_the_redis_adapter_fails_where_redis_constructs_a_connection() -> None:
    """An armed failure is raised at the first place a connection can fail: constructing
    redis's connection object (``make_connection``), before it connects."""
    pytest.importorskip("redis")
    factory = RecordingFactory()
    pool = load(None, "redis").make(2, True, 0.05, factory)
    factory.fail_next = 1
    with pytest.raises(ConnectFailed, match="constructing the redis connection"):
        pool.get_conn()
    assert factory.injected(factory.raised[0]) and factory.created == []
    conn = pool.get_conn()  # the failure was consumed there: the next one connects
    assert factory.created == [conn]
    pool.put_conn(conn)


# -- httpcore ------------------------------------------------------------------------------

def test_real_httpcore_pool() -> None:
    pytest.importorskip("httpcore")
    target = load(None, "httpcore")
    assert (target.spec, target.modes, target.has_close) == (
        "httpcore:ConnectionPool", adapters.BLOCKING_ONLY, True)
    factory = _cycle(target)
    assert len(factory.created) == 2  # the broken one was replaced, the other reused
    with pytest.raises(adapters.NotApplicable):
        target.make(1, False, None, RecordingFactory())


def test_httpcore_is_not_auto_detected() -> None:
    """handle_request is not this pool's alone: auto must not claim it."""
    httpcore = pytest.importorskip("httpcore")
    assert adapters.detect(httpcore.ConnectionPool) is None
    with pytest.raises(LoadError, match="has no get_conn") as refused:
        load("httpcore:ConnectionPool")
    assert str(refused.value).endswith("adapters: --adapter httpcore (docs/ADAPTERS.md)")
    with pytest.raises(LoadError, match=r"--adapter httpcore-async \(docs"):
        load("httpcore:AsyncConnectionPool")
    target = load("httpcore:ConnectionPool", "httpcore")
    assert target.command_spec == "httpcore:ConnectionPool --adapter httpcore"


def test_httpcore_round_trip_gives_the_factorys_connection() -> None:
    pytest.importorskip("httpcore")
    factory = RecordingFactory()
    pool = load(None, "httpcore").make(1, True, None, factory)
    conn = pool.get_conn(timeout=0)
    assert factory.created == [conn] and not conn.closed
    pool.put_conn(conn)
    assert not conn.closed  # kept idle (keep-alive), not closed
    assert pool.get_conn(timeout=0) is conn  # and reused
    pool.put_conn(conn)
    pool.close()
    assert conn.closed


def test_httpcore_pool_timeout_is_empty_pool_error() -> None:
    pytest.importorskip("httpcore")
    pool = load(None, "httpcore").make(1, True, 0.05, RecordingFactory())
    conn = pool.get_conn()
    with pytest.raises(adapters.EmptyPoolError) as empty:
        pool.get_conn(timeout=0.0)  # per call
    assert type(empty.value.__cause__).__name__ == "PoolTimeout"
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn()  # None: the pool's own 0.05 s
    pool.put_conn(conn)


@pytest.mark.parametrize("adapter", ["httpcore", "httpcore-async"])
@pytest.mark.parametrize("failure", [ConnectFailed, Interrupted])
def test_httpcore_factory_failure_surfaces_and_frees_the_slot(
        failure: type[BaseException], adapter: str) -> None:
    """Sync, and asyncio through the blocking facade."""
    pytest.importorskip("httpcore")
    if adapter == "httpcore-async":
        pytest.importorskip("anyio")
    factory = RecordingFactory()
    pool = load(None, adapter).make(1, True, 0.05, factory)
    factory.fail_next, factory.fail_with = 1, failure
    with pytest.raises(failure) as raised:
        pool.get_conn()
    assert factory.injected(raised.value)  # the very object, raised where httpcore connects
    conn = pool.get_conn(timeout=0)  # the only slot is free again
    assert factory.created == [conn]
    pool.put_conn(conn)


def test_httpcore_broken_connection_is_dropped() -> None:
    """put_conn(None): the caller closed it; httpcore finds it expired and connects anew."""
    pytest.importorskip("httpcore")
    factory = RecordingFactory()
    pool = load(None, "httpcore").make(1, True, None, factory)
    conn = pool.get_conn(timeout=0)
    conn.close_as_caller()
    pool.put_conn(None)
    again = pool.get_conn(timeout=0)
    assert again is not conn and not again.closed and factory.created == [conn, again]
    with pytest.raises(adapters.AdapterError, match="not checked out"):
        pool.put_conn(RecordingFactory()())
    pool.put_conn(again)


def test_httpcore_semantics_show_in_the_results() -> None:
    """Every check runs to a verdict (no harness error); the one-caller-at-a-time checks
    pass but closed: httpcore's pool has no closed state, and keeps serving."""
    pytest.importorskip("httpcore")
    short = dataclasses.replace(TINY, stress_seconds=1.5, shrink_seconds=0.5,
                                parallel_seconds=0.5)
    results = {r.name: r for r in run_checks(load(None, "httpcore"), short, 1)}
    assert {r.status for r in results.values()} <= {"passed", "failed"}, {
        n: r.message for n, r in results.items() if r.status not in ("passed", "failed")}
    assert {n: r.status for n, r in results.items() if n.startswith("sequential/")} == {
        **dict.fromkeys([*SEQUENTIAL, "sequential/deadlock-free", "sequential/exclusive",
                         "sequential/timeout"], "passed"),
        "sequential/closed": "failed"}
    assert "get_conn on a closed pool gave connection" in results["sequential/closed"].message


@pytest.mark.slow
def test_httpcore_full_quick_profile(tmp_path: Path) -> None:
    """The command line, the whole quick profile: failures, never an error."""
    pytest.importorskip("httpcore")
    report = tmp_path / "httpcore.json"
    assert main(["check", "httpcore:ConnectionPool", "--adapter", "httpcore", "--profile",
                 "quick", "--seed", "1", "--json", str(report)]) == 1
    checks = json.loads(report.read_text())["checks"]
    assert {c["status"] for c in checks} <= {"passed", "failed"}, checks
    assert {c["name"] for c in checks if c["status"] == "failed"} >= {
        "sequential/closed", "stress/closed", "parallel/linearizable"}


# -- httpcore-async ------------------------------------------------------------------------

def _orphan(run: Any) -> bool:
    """A run after which a slot was lost with nothing checked out (httpcore issue #1093)."""
    return run.facts is not None and run.facts.capacity_intact is False


def test_real_httpcore_async_pool_through_the_facade() -> None:
    httpcore = pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    target = load(None, "httpcore-async")
    assert (target.spec, target.modes, target.has_close, target.asynchronous) == (
        "httpcore:AsyncConnectionPool", adapters.BLOCKING_ONLY, True, True)
    assert adapters.detect(httpcore.AsyncConnectionPool) is None  # chosen by name only
    assert target.command_spec == "httpcore:AsyncConnectionPool --adapter httpcore-async"
    factory = _cycle(target)
    assert len(factory.created) == 2  # the broken one was replaced, the other reused
    with pytest.raises(adapters.NotApplicable):
        target.make(1, False, None, RecordingFactory())


def test_httpcore_async_round_trip_and_timeout() -> None:
    pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    target = load(None, "httpcore-async")
    factory = RecordingFactory()
    pool = target.make(1, True, 0.05, factory)
    conn = pool.get_conn(timeout=0)
    assert factory.created == [conn] and not conn.closed
    with pytest.raises(adapters.EmptyPoolError) as empty:
        pool.get_conn(timeout=0.0)  # per call
    assert type(empty.value.__cause__).__name__ == "PoolTimeout"
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn()  # None: the pool's own 0.05 s
    pool.put_conn(conn)
    assert not conn.closed and pool.get_conn(timeout=0) is conn  # kept idle, reused
    pool.put_conn(conn)
    pool.close()
    assert conn.closed


def test_httpcore_async_sequential_checks_run_through_the_facade() -> None:
    """Through the blocking facade, each one-caller-at-a-time check comes to a verdict:
    passed, but closed (no closed state: after aclose() the pool keeps serving)."""
    pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    results = {r.name: r for r in run_checks(load(None, "httpcore-async"), TINY, 1,
                                             SEQUENTIAL)}
    assert {n: r.status for n, r in results.items()} == {
        **dict.fromkeys(SEQUENTIAL, "passed"), "sequential/closed": "failed"}, {
        n: r.message for n, r in results.items()}
    assert "get_conn on a closed pool gave connection" in results["sequential/closed"].message


def test_httpcore_async_needs_anyio(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("httpcore")
    monkeypatch.setitem(sys.modules, "anyio", None)  # None: not importable
    with pytest.raises(LoadError, match="pip install anyio"):
        load(None, "httpcore-async")


def test_httpcore_async_controlled_run_has_a_verdict() -> None:
    """The controlled event loop drives httpcore on anyio to a verdict: closed, as httpcore
    has no closed state (the probe's get_conn after close() is served)."""
    pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    from poolcheck.run.controlled import NO_VERDICT, RandomWalk, run_controlled

    run = run_controlled(load(None, "httpcore-async"), Program(("get",), (("put",), ("get",))),
                         2, True, RandomWalk(0))
    assert run.kind not in NO_VERDICT and run.kind != "internal", run.report()
    assert run.kind == "closed" and "get_conn on the closed pool gave ok" in run.message, \
        run.report()
    assert run.history is not None and len(run.history.events) >= 4


@pytest.mark.parametrize("connected", [False, True])
def test_httpcore_async_cancelled_get_orphans_a_connection(connected: bool) -> None:
    """The connection made for a get_conn that is then cancelled stays in the pool, owned
    by nobody, and holds its slot for ever: made for a waiter the freed slot woke, before
    it connects (findings/httpcore_async_cancel_orphans_connection.py), or just after it
    connected, socket open (findings/httpcore_async_cancel_after_connect_keeps_socket.py).
    """
    pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    from poolcheck.run.controlled import explore, replay

    def shape(run: Any) -> bool:
        return _orphan(run) and any(c.outcome == WAIT_INTERRUPTED and c.connected == connected
                                    for c in run.facts.log.calls)

    target = load(None, "httpcore-async")
    program = Program(("get",), (("discard",), ("interrupt", "wait")))
    found = explore(target, program, 1, True, strategy="bounded", runs=2000, seconds=200,
                    wanted=shape)
    run = found.failure
    assert run is not None, f"not found in {found.runs} runs"
    assert run.kind == "interrupt-safe" and "interrupted while it waited" in run.message, \
        run.report()
    assert "handed out only 0 of maxsize=1" in run.message, run.report()
    assert "cancel" in [p.what for p in run.trail]
    assert [shape(replay(run.token, target)) for _ in range(2)] == [True, True]
    assert shape(replay(run.token))  # the token alone names the target and its adapter


def test_httpcore_async_pool_timeout_orphans_a_connection() -> None:
    """No cancellation: a pool timeout racing a failed connect's freed slot leaves the
    connection made for the waiter that left (findings/httpcore_pool_timeout_orphans_
    connection.py, the sync pool's form of the same bug)."""
    pytest.importorskip("httpcore")
    pytest.importorskip("anyio")
    from poolcheck.run.controlled import explore, replay

    target = load(None, "httpcore-async")
    found = explore(target, Program(("fail",), (("get",), ("get",))), 1, True,
                    strategy="bounded", runs=2000, seconds=200, wanted=_orphan)
    run = found.failure
    assert run is not None, f"not found in {found.runs} runs"
    assert run.kind == "capacity" and "only 0 of maxsize=1" in run.message, run.report()
    assert "cancel" not in [p.what for p in run.trail]
    assert [_orphan(replay(run.token, target)) for _ in range(2)] == [True, True]


# -- redis-async ---------------------------------------------------------------------------

def test_real_redis_async_pool_through_the_facade() -> None:
    redis_asyncio = pytest.importorskip("redis.asyncio")
    target = load(None, "redis-async")
    assert (target.spec, target.modes, target.has_close, target.asynchronous) == (
        "redis.asyncio:BlockingConnectionPool", adapters.BLOCKING_ONLY, True, True)
    assert adapters.detect(redis_asyncio.BlockingConnectionPool) is None  # by name only
    assert target.command_spec == ("redis.asyncio:BlockingConnectionPool "
                                   "--adapter redis-async")
    factory = _cycle(target)
    assert len(factory.created) == 3  # redis reconnects the broken one's object: LIFO
    with pytest.raises(adapters.NotApplicable):
        target.make(1, False, None, RecordingFactory())


def test_redis_async_timeout_per_call_and_fault_points() -> None:
    """The timeout is per calling task; an armed failure is raised where redis constructs
    the connection object (which loses no slot here, unlike the sync pool), then where it
    connects (released, reconnected by the next checkout)."""
    pytest.importorskip("redis.asyncio")
    target = load(None, "redis-async")
    factory = RecordingFactory()
    pool = target.make(1, True, None, factory)  # waits for ever
    conn = pool.get_conn(timeout=0)
    with pytest.raises(adapters.EmptyPoolError) as empty:
        pool.get_conn(timeout=0.0)  # per call
    assert str(empty.value.__cause__) == adapters.REDIS_EMPTY
    pool.put_conn(conn)
    assert pool.get_conn(timeout=0) is conn  # kept idle, reused
    pool.put_conn(conn)
    factory = RecordingFactory()
    pool = target.make(1, True, 0.05, factory)
    factory.fail_next = 1
    with pytest.raises(ConnectFailed, match="constructing the redis connection"):
        pool.get_conn()
    assert factory.injected(factory.raised[0]) and factory.created == []
    factory.fail_next, factory.fail_with = 1, Interrupted
    with pytest.raises(Interrupted, match="constructing the redis connection"):
        pool.get_conn()  # the first fault point again: nothing was constructed
    first = pool.get_conn(timeout=0)  # the only slot is still there
    pool.put_conn(first)
    pool.close()
    factory.fail_next = 1
    with pytest.raises(Interrupted) as raised:
        pool.get_conn()  # the object exists (disconnected): it fails where it connects
    assert factory.injected(raised.value)
    again = pool.get_conn(timeout=0)  # released by redis: the slot is free again
    assert factory.created == [first, again] and not again.closed
    pool.put_conn(again)


def test_redis_async_controlled_run_has_a_verdict() -> None:
    """The controlled event loop drives redis.asyncio to a verdict: closed (no closed state:
    after disconnect() the probe's get_conn is served)."""
    pytest.importorskip("redis.asyncio")
    from poolcheck.run.controlled import NO_VERDICT, RandomWalk, run_controlled

    run = run_controlled(load(None, "redis-async"), Program(("get",), (("put",), ("get",))),
                         2, True, RandomWalk(0))
    assert run.kind not in NO_VERDICT and run.kind != "internal", run.report()
    assert run.kind == "closed" and "get_conn on the closed pool gave ok" in run.message, \
        run.report()
    assert run.history is not None and len(run.history.events) >= 4


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="asyncio.Condition passes a "
                    "cancelled waiter's notify() on since Python 3.13 (CPython gh-112202)")
def test_redis_async_cancelled_waiter_loses_the_wakeup() -> None:
    """A waiter cancelled after release() notified it takes the wake-up with it: the other
    waiter waits for ever while the connection is idle (asyncio.Condition before Python
    3.13, CPython gh-112202; findings/redis_async_cancel_loses_wakeup.py)."""
    pytest.importorskip("redis.asyncio")
    from poolcheck.run.controlled import explore, replay

    def lost(run: Any) -> bool:
        return (run.kind == "interrupt-safe" and "waits for ever" in run.message
                and "callers hold only 0 of maxsize=1" in run.message)

    target = load(None, "redis-async")
    found = explore(target, Program(("get",), (("put",), ("interrupt", "wait"), ("wait",))),
                    1, True, strategy="bounded", runs=400, seconds=60, wanted=lost)
    run = found.failure
    assert run is not None, f"not found in {found.runs} runs"
    assert "a lost wake-up" in run.message and "cancel" in [p.what for p in run.trail], \
        run.report()
    assert [lost(replay(run.token, target)) for _ in range(2)] == [True, True]
    assert lost(replay(run.token))  # the token alone names the target and its adapter


# -- psycopg_pool ----------------------------------------------------------------------------

def test_real_psycopg_pool() -> None:
    pytest.importorskip("psycopg_pool")
    target = load(None, "psycopg_pool")
    assert (target.spec, target.modes, target.has_close) == (
        "psycopg_pool:ConnectionPool", adapters.BLOCKING_ONLY, True)
    with pytest.raises(adapters.NotApplicable):
        target.make(1, False, None, RecordingFactory())


def test_psycopg_pool_timeout_0_is_never_served() -> None:
    """A difference, left visible: psycopg_pool takes a timeout <= 0 as a deadline already
    past, and raises PoolTimeout before it looks for an idle connection."""
    pytest.importorskip("psycopg_pool")
    pool = load(None, "psycopg_pool").make(1, True, None, RecordingFactory())
    conn = pool.get_conn(timeout=2.0)
    pool.put_conn(conn)
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn(timeout=0)  # the one connection is idle
    assert pool.get_conn(timeout=0.5) is conn
    pool.put_conn(conn)
    pool.close()


def test_psycopg_pool_round_trip_gives_the_factorys_connection() -> None:
    pytest.importorskip("psycopg_pool")
    factory = RecordingFactory()
    pool = load(None, "psycopg_pool").make(1, True, None, factory)
    assert factory.created == []  # min_size=0: nothing made before it is asked for
    conn = pool.get_conn(timeout=2.0)
    assert factory.created == [conn] and not conn.closed
    pool.put_conn(conn)
    assert not conn.closed
    assert pool.get_conn(timeout=2.0) is conn  # kept idle, and reused
    pool.put_conn(conn)
    pool.close()
    assert conn.closed


def test_psycopg_pool_timeout_is_empty_pool_error_and_closed_is_closed() -> None:
    pytest.importorskip("psycopg_pool")
    pool = load(None, "psycopg_pool").make(1, True, 0.05, RecordingFactory())
    conn = pool.get_conn(timeout=2.0)
    with pytest.raises(adapters.EmptyPoolError) as empty:
        pool.get_conn(timeout=0.01)  # per call
    assert type(empty.value.__cause__).__name__ == "PoolTimeout"
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn()  # None: the pool's own 0.05 s
    pool.put_conn(conn)
    pool.close()
    with pytest.raises(adapters.ClosedPoolError) as closed:
        pool.get_conn(timeout=1.0)
    assert type(closed.value.__cause__).__name__ == "PoolClosed"
    assert contract_error(closed.value, RecordingFactory()) == "ClosedPoolError"


def test_psycopg_pool_connects_in_a_worker_so_a_failure_does_not_surface() -> None:
    """psycopg_pool connects in its worker threads and retries a failure about 1 s later:
    the caller only ever sees its own wait time out (a difference, left visible)."""
    pytest.importorskip("psycopg_pool")
    factory = RecordingFactory()
    pool = load(None, "psycopg_pool").make(1, True, None, factory)
    factory.fail_next = 1
    with pytest.raises(adapters.EmptyPoolError):
        pool.get_conn(timeout=0.3)
    assert len(factory.raised) == 1 and factory.created == []  # raised, in a worker
    conn = pool.get_conn(timeout=3.0)  # the worker's retry
    assert factory.created == [conn]
    pool.put_conn(conn)
    pool.close()


def test_psycopg_pool_broken_connection_is_replaced() -> None:
    """put_conn(None): psycopg_pool sees the connection closed and makes a new one."""
    pytest.importorskip("psycopg_pool")
    factory = RecordingFactory()
    pool = load(None, "psycopg_pool").make(1, True, None, factory)
    conn = pool.get_conn(timeout=2.0)
    conn.close_as_caller()
    pool.put_conn(None)
    again = pool.get_conn(timeout=2.0)
    assert again is not conn and not again.closed and factory.created == [conn, again]
    with pytest.raises(adapters.AdapterError, match="not checked out"):
        pool.put_conn(RecordingFactory()())
    pool.put_conn(again)
    pool.close()


# a psycopg_pool worker that the injected Interrupted (a BaseException) reaches dies, as
# docs/ADAPTERS.md says: expected, not a warning worth showing
WORKER_DIES = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnhandledThreadExceptionWarning")


@WORKER_DIES
def test_psycopg_pool_semantics_show_in_the_results() -> None:
    """The one-caller-at-a-time checks run to a verdict (no harness error); psycopg_pool
    has a closed state. (The whole profile: the slow test below.)"""
    pytest.importorskip("psycopg_pool")
    results = {r.name: r for r in run_checks(load(None, "psycopg_pool"), TINY, 1,
                                             only=SEQUENTIAL_ALL)}
    assert {r.status for r in results.values()} <= {"passed", "failed"}, {
        n: r.message for n, r in results.items() if r.status not in ("passed", "failed")}
    assert set(results) == set(SEQUENTIAL_ALL)
    assert results["sequential/closed"].status == "passed"


@pytest.mark.slow
@WORKER_DIES
def test_psycopg_pool_full_quick_profile(tmp_path: Path) -> None:
    """The command line, the whole quick profile: failures, never an error."""
    pytest.importorskip("psycopg_pool")
    report = tmp_path / "psycopg_pool.json"
    assert main(["check", "--adapter", "psycopg_pool", "--profile", "quick", "--seed", "1",
                 "--json", str(report)]) == 1
    checks = json.loads(report.read_text())["checks"]
    assert {c["status"] for c in checks} <= {"passed", "failed"}, checks


# -- dbutils ---------------------------------------------------------------------------------

def test_real_dbutils_pool() -> None:
    pytest.importorskip("dbutils")
    target = load(None, "dbutils")
    assert (target.spec, target.modes, target.has_close) == (
        "dbutils.pooled_db:PooledDB", adapters.BOTH, True)
    factory = _cycle(target)
    assert len(factory.created) == 3  # the broken one replaced on its return, one reused


def test_dbutils_round_trip_gives_the_creators_raw_connection() -> None:
    pytest.importorskip("dbutils")
    factory = RecordingFactory()
    pool = load(None, "dbutils").make(1, True, None, factory)
    conn = pool.get_conn()
    assert factory.created == [conn] and not conn.closed  # not SteadyDB's wrapper
    pool.put_conn(conn)
    assert not conn.closed
    assert pool.get_conn() is conn  # kept idle, and reused
    pool.put_conn(conn)
    pool.close()
    assert conn.closed


def test_dbutils_never_waits_when_not_blocking() -> None:
    pytest.importorskip("dbutils")
    factory = RecordingFactory()
    pool = load(None, "dbutils").make(1, False, None, factory)
    first, second = pool.get_conn(), pool.get_conn()  # no limit on connections out
    pool.put_conn(first)
    pool.put_conn(second)  # the idle cache is full: closed, not kept
    assert factory.created == [first, second] and not first.closed and second.closed
    pool.close()


def test_dbutils_refusal_is_empty_pool_error_and_none_waits() -> None:
    """DBUtils waits for ever or refuses at once: a finite timeout is run as 0."""
    pytest.importorskip("dbutils")
    pool = load(None, "dbutils").make(1, True, None, RecordingFactory())
    conn = pool.get_conn()
    started = time.monotonic()
    with pytest.raises(adapters.EmptyPoolError) as empty:
        pool.get_conn(timeout=5.0)
    assert time.monotonic() - started < 1.0  # at once, not after 5 s
    assert type(empty.value.__cause__).__name__ == "TooManyConnectionsError"
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.get_conn()))  # None: for ever
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and got == []  # waiting
    pool.put_conn(conn)
    waiter.join(2.0)
    assert got == [conn]
    pool.put_conn(conn)
    pool.close()


@pytest.mark.parametrize("failure", [ConnectFailed, Interrupted])
def test_dbutils_factory_failure_surfaces_and_frees_the_slot(
        failure: type[BaseException]) -> None:
    pytest.importorskip("dbutils")
    factory = RecordingFactory()
    pool = load(None, "dbutils").make(1, True, 0.05, factory)
    factory.fail_next, factory.fail_with = 1, failure
    with pytest.raises(failure) as raised:
        pool.get_conn()
    assert factory.injected(raised.value)  # the very object, raised where DBUtils connects
    conn = pool.get_conn()  # the only slot is free again
    assert factory.created == [conn]
    pool.put_conn(conn)
    pool.close()


def test_dbutils_broken_connection_is_replaced_on_return() -> None:
    """put_conn(None): the rollback DBUtils does on return fails on the closed connection,
    so DBUtils reconnects there and keeps the new one idle."""
    pytest.importorskip("dbutils")
    factory = RecordingFactory()
    pool = load(None, "dbutils").make(1, True, None, factory)
    conn = pool.get_conn()
    conn.close_as_caller()
    pool.put_conn(None)
    assert len(factory.created) == 2  # made during put_conn(None)
    again = pool.get_conn()
    assert again is factory.created[1] and not again.closed
    pool.put_conn(again)
    pool.close()


def test_dbutils_semantics_show_in_the_results() -> None:
    """The one-caller-at-a-time checks run to a verdict (no harness error, no hang):
    DBUtils' close() closes the idle connections and the pool keeps serving; a finite
    timeout is refused at once. (The whole profile: the slow test below.)"""
    pytest.importorskip("dbutils")
    results = {r.name: r for r in run_checks(load(None, "dbutils"), TINY, 1,
                                             only=SEQUENTIAL_ALL)}
    assert {r.status for r in results.values()} <= {"passed", "failed"}, {
        n: r.message for n, r in results.items() if r.status not in ("passed", "failed")}
    assert set(results) == set(SEQUENTIAL_ALL)
    assert results["sequential/closed"].status == "failed"
    assert "get_conn on a closed pool gave connection" in results["sequential/closed"].message
    assert results["sequential/timeout"].status == "failed"
    assert "before the" in results["sequential/timeout"].message


@pytest.mark.slow
def test_dbutils_full_quick_profile(tmp_path: Path) -> None:
    """The command line, the whole quick profile: failures, never an error."""
    pytest.importorskip("dbutils")
    report = tmp_path / "dbutils.json"
    assert main(["check", "--adapter", "dbutils", "--profile", "quick", "--seed", "1",
                 "--json", str(report)]) == 1
    checks = json.loads(report.read_text())["checks"]
    assert {c["status"] for c in checks} <= {"passed", "failed"}, checks
    assert {c["name"] for c in checks if c["status"] == "failed"} >= {
        "sequential/closed", "sequential/timeout", "parallel/linearizable"}


# -- urllib3's urlopen ---------------------------------------------------------------------

def _urllib3_2() -> Any:
    urllib3 = pytest.importorskip("urllib3")
    if int(urllib3.__version__.split(".")[0]) < 2:
        pytest.skip("urllib3 2.x")
    return urllib3


def test_urlopen_adapter_is_chosen_by_name_only() -> None:
    urllib3 = _urllib3_2()
    assert adapters.detect(urllib3.HTTPConnectionPool) == "urllib3"
    target = load(None, "urllib3-urlopen")
    assert (target.spec, target.modes, target.has_close) == (
        "urllib3:HTTPConnectionPool", adapters.BOTH, True)
    assert target.command_spec == "urllib3:HTTPConnectionPool --adapter urllib3-urlopen"


def test_urlopen_round_trip_gives_the_factorys_connection() -> None:
    _urllib3_2()
    factory = RecordingFactory()
    adapted = load(None, "urllib3-urlopen").make(1, True, None, factory)
    conn = adapted.get_conn(timeout=0)
    assert factory.created == [conn] and not conn.closed
    assert adapted.pool.num_requests == 1  # a request went through urlopen
    adapted.put_conn(conn)  # response.release_conn()
    assert not conn.closed
    assert adapted.get_conn(timeout=0) is conn  # kept alive, reused
    assert adapted.pool.num_requests == 2
    adapted.put_conn(conn)
    adapted.close()
    assert conn.closed and conn.close_calls == 1
    with pytest.raises(Exception) as closed:
        adapted.get_conn()
    assert contract_error(closed.value, factory) == "ClosedPoolError"


def test_urlopen_pool_timeout_is_empty_pool_error() -> None:
    _urllib3_2()
    factory = RecordingFactory()
    adapted = load(None, "urllib3-urlopen").make(1, True, 0.05, factory)
    conn = adapted.get_conn()
    with pytest.raises(Exception) as empty:
        adapted.get_conn(timeout=0.0)  # per call: urlopen's pool_timeout
    assert type(empty.value).__module__.startswith("urllib3")  # urllib3's own, unmapped
    assert contract_error(empty.value, factory) == "EmptyPoolError"
    with pytest.raises(Exception) as again:
        adapted.get_conn()  # None: the pool's own 0.05 s
    assert contract_error(again.value, factory) == "EmptyPoolError"
    adapted.put_conn(conn)


class FailsOnlyAtRead(RecordingFactory):
    """An armed failure skips the send fault point and surfaces when the answer is read."""

    def fault(self, point: str) -> None:
        if point != "send":
            super().fault(point)


@pytest.mark.parametrize("failure", [ConnectFailed, Interrupted])
@pytest.mark.parametrize("point", ["connect", "send", "read"])
def test_urlopen_fault_surfaces_and_gives_the_slot_back(
        point: str, failure: type[BaseException]) -> None:
    """urllib3 2 wraps the OSError in ProtocolError; the adapter hands the checker the very
    object the factory raised, and the slot is free again: maxsize connections can be had."""
    _urllib3_2()
    factory = FailsOnlyAtRead() if point == "read" else RecordingFactory()
    adapted = load(None, "urllib3-urlopen").make(2, True, 0.05, factory)
    if point != "connect":  # an idle connection: no connect, the failure comes later
        adapted.put_conn(adapted.get_conn())
    factory.fail_next, factory.fail_with = 1, failure
    with pytest.raises(failure) as raised:
        adapted.get_conn()
    assert factory.injected(raised.value)
    assert str(raised.value).startswith("connection refused" if point == "connect"
                                        else f"{point} failed")
    if failure is ConnectFailed:
        assert type(raised.value.__cause__).__name__ == "ProtocolError"
    first, second = adapted.get_conn(timeout=0), adapted.get_conn(timeout=0)
    assert not first.closed and not second.closed and first is not second
    with pytest.raises(Exception) as empty:
        adapted.get_conn(timeout=0)
    assert contract_error(empty.value, factory) == "EmptyPoolError"
    assert [c.closed for c in factory.created] == [point != "connect", False, False][
        :len(factory.created)]
    adapted.put_conn(first)
    adapted.put_conn(second)


def test_urlopen_broken_connection_is_reconnected() -> None:
    """put_conn(None): the response is closed and released, as urllib3 does when a body
    read fails; the same urllib3 connection opens a new socket on its next request."""
    _urllib3_2()
    factory = RecordingFactory()
    adapted = load(None, "urllib3-urlopen").make(1, True, None, factory)
    conn = adapted.get_conn(timeout=0)
    conn.close_as_caller()
    adapted.put_conn(None)
    again = adapted.get_conn(timeout=0)
    assert again is not conn and not again.closed and factory.created == [conn, again]
    assert conn.close_calls == 1  # the caller's close; urllib3's finds the socket closed
    with pytest.raises(adapters.AdapterError, match="not checked out"):
        adapted.put_conn(RecordingFactory()())
    adapted.put_conn(again)


@pytest.mark.slow
def test_urlopen_full_quick_profile(tmp_path: Path) -> None:
    """The command line, the whole quick profile on the public path: no check errors."""
    _urllib3_2()
    report = tmp_path / "urlopen.json"
    assert main(["check", "urllib3:HTTPConnectionPool", "--adapter", "urllib3-urlopen",
                 "--profile", "quick", "--seed", "1", "--json", str(report)]) in (0, 1)
    checks = json.loads(report.read_text())["checks"]
    assert {c["status"] for c in checks} <= {"passed", "failed"}, checks
    failed = {c["name"]: c["message"] for c in checks if c["status"] == "failed"}
    # close() wakes no waiter (as _get_conn); in some runs, _put_conn racing close()
    # raises from its "pool is full" log line (findings/urllib3_put_conn_races_close.py)
    assert set(failed) <= {"stress/closed", "stress/errors"}, failed
    assert "qsize" in failed.get("stress/errors", "qsize"), failed


def test_redis_before_5_3_gets_the_command_name_it_requires() -> None:
    """redis-py before 5.3: ``get_connection(command_name, *keys, **options)``; after, the
    name is optional and deprecated, so it is left out."""
    class Old:
        def get_connection(self, command_name: str, *keys: Any, **options: Any) -> None: ...

    class New:
        def get_connection(self, command_name: Any = None, *keys: Any,
                           **options: Any) -> None: ...

    class Newest:
        def get_connection(self) -> None: ...

    assert adapters._redis_command(Old) == ("PING",)
    assert adapters._redis_command(New) == ()
    assert adapters._redis_command(Newest) == ()
