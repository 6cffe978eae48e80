"""The controlled event loop (poolcheck.run.aio) and the blocking facade over asyncio pools."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from poolcheck.load.targets import Target, load
from poolcheck.run import controlled
from poolcheck.run.controlled import (
    INTERRUPT_PROGRAMS,
    RandomWalk,
    explore,
    replay,
    run_controlled,
)
from poolcheck.run.parallel import Program

ROOT = Path(__file__).resolve().parents[1]


class ClosedPoolError(Exception):
    pass


class EmptyPoolError(Exception):
    pass


class CondPool:
    """A correct asyncio pool on one Condition (put_conn and close are coroutines), save
    that a waiter cancelled after its notify() may swallow it (asyncio.Condition before
    Python 3.13 does)."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Callable[[], Awaitable[Any]] | None = None) -> None:
        assert connection_factory is not None
        self.maxsize, self.block, self.timeout = maxsize, block, timeout
        self._factory = connection_factory
        self._idle: list[Any] = []
        self._live = 0
        self._closed = False
        self._cond = asyncio.Condition()

    async def get_conn(self, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        async with self._cond:
            while True:
                if self._closed:
                    raise ClosedPoolError
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    self._live += 1
                    break
                try:
                    await asyncio.wait_for(self._cond.wait(), timeout)
                except asyncio.TimeoutError:
                    raise EmptyPoolError from None
                except asyncio.CancelledError:
                    self.passes_on()
                    raise
        try:
            return await self._factory()
        except BaseException:
            await self.put_conn(None)
            raise

    def passes_on(self) -> None:
        pass  # the bug: a notify() that reached this waiter is lost

    async def put_conn(self, conn: Any) -> None:
        async with self._cond:
            if conn is not None and not self._closed and len(self._idle) < self.maxsize:
                self._idle.append(conn)
            else:
                self._live -= 1
                if conn is not None:
                    conn.close()
            self._cond.notify()

    async def close(self) -> None:
        async with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._live -= len(self._idle)
            self._idle = []
            self._cond.notify_all()


class PassingCondPool(CondPool):
    """The same, passing a swallowed notify() on: interrupt-safe."""

    def passes_on(self) -> None:
        self._cond.notify()  # (lock held again: Condition.wait re-acquires it)


class CountsAfterConnect(CondPool):
    """Counts a new connection only once connected: two gets both see room."""

    async def get_conn(self, timeout: float | None = None) -> Any:
        async with self._cond:
            if self._closed:
                raise ClosedPoolError
            if self._idle:
                return self._idle.pop()
            room = not self.block or self._live < self.maxsize
        if not room:
            raise EmptyPoolError
        conn = await self._factory()
        self._live += 1
        return conn


class PollingPool(PassingCondPool):
    """Waits by polling with asyncio.sleep against a time.monotonic() deadline: correct,
    if the loop's clock and the pool's agree (both virtual under control)."""

    async def get_conn(self, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            async with self._cond:
                if self._closed:
                    raise ClosedPoolError
                if self._idle:
                    return self._idle.pop()
                if not self.block or self._live < self.maxsize:
                    self._live += 1
                    break
            if deadline is not None and time.monotonic() >= deadline:
                raise EmptyPoolError
            await asyncio.sleep(0.05)
        try:
            return await self._factory()
        except BaseException:
            await self.put_conn(None)
            raise


def test_an_asyncio_pool_is_detected_and_driven_on_the_controlled_loop() -> None:
    target = Target.of(PassingCondPool)
    assert target.adapter == "asyncio" and target.asynchronous
    run = run_controlled(target, Program(("get",), (("put",), ("get",))), 1, True,
                         RandomWalk(0))
    assert run.kind is None, run.report()
    assert run.history is not None and len(run.history.events) >= 3


def test_a_race_across_an_await_is_found_and_replays() -> None:
    target = Target.of(CountsAfterConnect)
    found = explore(target, Program((), (("get",), ("get",))), 1, True, strategy="bounded",
                    runs=500, seconds=200)
    run = found.failure
    assert run is not None and run.kind == "bound", run and run.report()
    assert "I/O done" in controlled.format_interleaving(run)
    assert [replay(run.token, target).kind for _ in range(3)] == ["bound"] * 3


@pytest.mark.parametrize("strategy", ["bounded", "random", "pct"])
def test_a_cancelled_waiter_that_swallows_its_wake_up_is_found(strategy: str) -> None:
    """(Not on CondPool: asyncio.Condition passes such a notify on since Python 3.13.)"""
    program = INTERRUPT_PROGRAMS[0]  # a return's wake-up reaches a waiter then cancelled
    buggy = load(f"{ROOT}/examples/aio/buggy/cancel_swallows_wakeup.py:Pool")
    found = explore(buggy, program, 1, True, strategy=strategy, seed=1, runs=3000,
                    seconds=200)
    run = found.failure
    assert run is not None, "not found"
    assert run.kind == "interrupt-safe" and "waits for ever" in run.message, run.report()
    assert replay(run.token, buggy).kind == "interrupt-safe"
    for fixed in (Target.of(PassingCondPool), load("poolcheck.pool:AsyncPool")):
        passed = explore(fixed, program, 1, True, strategy=strategy, seed=1, runs=1000,
                         seconds=200)
        assert passed.failure is None, passed.failure.report()


def test_the_pools_clock_is_the_loops() -> None:
    """A pool timing its waits with time.monotonic() and asyncio.sleep times out in
    virtual time, neither too early nor never."""
    program = Program(("get",), (("get",), ("put",)))
    found = explore(Target.of(PollingPool), program, 1, True, strategy="random", seed=2,
                    runs=300, seconds=200)
    assert found.failure is None, found.failure.report()
    assert found.runs == 300


def test_correct_asyncio_pools_pass_every_controlled_check() -> None:
    out = controlled.check_target(Target.of(PassingCondPool), seed=1, seconds=4,
                                  wanted=controlled.CONTROLLED_INVARIANTS, shrink_seconds=0)
    assert out.stuck is None, out.stuck.report()
    assert out.failure is None, out.failure.report()
    assert out.runs > 100


def test_the_facade_runs_the_blocking_checks() -> None:
    from poolcheck.observe.recording import RecordingFactory

    factory = RecordingFactory()
    pool = Target.of(PassingCondPool).make(1, True, 0.01, factory)
    first = pool.get_conn()
    with pytest.raises(EmptyPoolError):
        pool.get_conn(0.01)
    pool.put_conn(first)
    assert pool.get_conn() is first
    pool.close()
    with pytest.raises(ClosedPoolError):
        pool.get_conn()


def test_the_wrong_interface_is_refused_with_the_adapter_to_use() -> None:
    from poolcheck.errors import LoadError

    spec = f"{ROOT}/examples/aio/correct/condition_pool.py:Pool"
    assert load(spec).adapter == "asyncio"
    with pytest.raises(LoadError, match="use --adapter asyncio"):
        load(spec, "native")
    with pytest.raises(LoadError, match="use --adapter native"):
        load(f"{ROOT}/examples/correct/condition_fifo.py:Pool", "asyncio")
