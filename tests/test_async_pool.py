"""The asyncio pools: ``poolcheck.pool.AsyncPool``, the correct pools in examples/aio/correct,
and one demonstration per bug in examples/aio/buggy.

Each scenario runs in one event loop under plain ``asyncio.run``. Tasks are interleaved
with ``await asyncio.sleep(0)``, which lets every ready task run one step, never with real
sleeps, so each interleaving is the same on every run. Every body is bounded by
``asyncio.wait_for(..., 5)``: a pool that hangs fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import http.client
import inspect
import sys
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import poolcheck.pool
import pytest
from poolcheck.pool import AsyncPool

from examples.aio.buggy import (
    cancel_during_connect_loses_slot,
    cancel_swallows_wakeup,
    close_wakes_nobody,
    count_after_connect,
    put_async_keeps_closed,
)
from examples.aio.correct import condition_pool

Scenario = Callable[[Any], Awaitable[None]]


class Conn:
    """A connection that records whether it was closed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<Conn {self.n}{' closed' if self.closed else ''}>"


class Interrupt(BaseException):
    """Not an Exception, like CancelledError (KeyboardInterrupt would stop the event loop)."""


class Factory:
    """A connection factory that keeps what it made; it may yield, wait for a gate, or
    raise ``fail`` once."""

    def __init__(self, *, yields: int = 0, gate: asyncio.Event | None = None,
                 fail: BaseException | None = None) -> None:
        self.yields, self.gate, self.fail = yields, gate, fail
        self.calls = 0
        self.made: list[Conn] = []

    async def __call__(self) -> Conn:
        self.calls += 1
        for _ in range(self.yields):
            await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        conn = Conn(len(self.made))
        self.made.append(conn)
        return conn


def run(body: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(body, 5))


async def settle() -> None:
    """Let every task that can run, run until it waits again."""
    for _ in range(10):
        await asyncio.sleep(0)


async def put(pool: Any, conn: Any) -> None:
    """put_conn, awaited if the pool's put_conn is a coroutine function (as the checker does)."""
    result = pool.put_conn(conn)
    if inspect.isawaitable(result):
        await result


async def close(pool: Any) -> None:
    result = pool.close()
    if inspect.isawaitable(result):
        await result


def errors(cls: type) -> tuple[type[BaseException], type[BaseException]]:
    """The ClosedPoolError and EmptyPoolError of the module that defines the pool."""
    module = sys.modules[cls.__module__]
    return module.ClosedPoolError, module.EmptyPoolError


# -- scenarios: every correct pool passes them all, each buggy pool all but its bug's --------

async def reuse_lifo(cls: Any) -> None:
    f = Factory()
    pool = cls("h", maxsize=2, block=True, connection_factory=f)
    a, b = await pool.get_conn(), await pool.get_conn()
    await put(pool, a)
    await put(pool, b)
    assert await pool.get_conn() is b
    assert await pool.get_conn() is a
    assert len(f.made) == 2


async def nonblocking(cls: Any) -> None:
    f = Factory()
    pool = cls("h", maxsize=2, block=False, connection_factory=f)
    conns = [await pool.get_conn(timeout=0) for _ in range(3)]  # never waits
    for conn in conns:
        await put(pool, conn)
    assert [c.closed for c in conns] == [False, False, True]  # at most maxsize kept idle


async def times_out(cls: Any) -> None:
    _, empty = errors(cls)
    pool = cls("h", maxsize=1, block=True, timeout=0.01, connection_factory=Factory())
    held = await pool.get_conn()
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(empty):
        await pool.get_conn()  # the pool's timeout
    assert loop.time() - start >= 0.01 - 0.001  # the checker's slack for clock rounding
    with pytest.raises(empty):
        await pool.get_conn(timeout=0)
    await put(pool, held)
    assert await pool.get_conn(timeout=0) is held  # the timed-out waiters left no trace


async def waiter_gets_returned_conn(cls: Any) -> None:
    pool = cls("h", maxsize=1, block=True, connection_factory=Factory())
    held = await pool.get_conn()
    waiter = asyncio.create_task(pool.get_conn())
    await settle()
    assert not waiter.done()
    await put(pool, held)
    assert await waiter is held


async def put_none_frees_slot(cls: Any) -> None:
    f = Factory()
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    held = await pool.get_conn()
    waiter = asyncio.create_task(pool.get_conn())
    await settle()
    held.close()
    await put(pool, None)  # the caller closed its connection: the slot comes back
    assert await waiter is f.made[1]


async def close_wakes_and_closes(cls: Any) -> None:
    closed_error, _ = errors(cls)
    pool = cls("h", maxsize=1, block=True, connection_factory=Factory())
    held = await pool.get_conn()
    waiter = asyncio.create_task(pool.get_conn())
    await settle()
    await close(pool)
    with pytest.raises(closed_error):
        await waiter
    await put(pool, held)
    assert held.closed  # returned after close(): closed
    with pytest.raises(closed_error):
        await pool.get_conn()
    await close(pool)  # twice is fine

    pool = cls("h", maxsize=2, block=False, connection_factory=Factory())
    idle, out = await pool.get_conn(), await pool.get_conn()
    await put(pool, idle)
    await close(pool)
    assert idle.closed and not out.closed  # idle now, checked out when returned
    await put(pool, out)
    assert out.closed


async def factory_error_gives_slot_back(cls: Any) -> None:
    error = OSError("connection refused")
    f = Factory(fail=error)
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    with pytest.raises(OSError) as raised:
        await pool.get_conn()
    assert raised.value is error  # unchanged
    await put(pool, await pool.get_conn(timeout=0))  # the slot came back

    gate = asyncio.Event()
    f = Factory(gate=gate, fail=Interrupt())  # a BaseException too
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    first = asyncio.create_task(pool.get_conn())
    await settle()
    second = asyncio.create_task(pool.get_conn())
    await settle()
    assert f.calls == 1  # the second waits for the slot
    gate.set()
    with pytest.raises(Interrupt):
        await first
    assert await second is f.made[0]  # the failed connect's slot went to the waiter


async def cancel_after_handoff(cls: Any, returned: str) -> None:
    """(a) B is cancelled after the returned connection (or freed slot) was handed to it, or
    after it was woken for it, but before it ran: it must pass it on to C."""
    f = Factory()
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    held = await pool.get_conn()
    b = asyncio.create_task(pool.get_conn())
    await settle()
    c = asyncio.create_task(pool.get_conn())
    await settle()
    if returned == "conn":
        await put(pool, held)
    else:
        held.close()
        await put(pool, None)
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    got = await c
    assert got is (held if returned == "conn" else f.made[1])
    assert [x for x in f.made if not x.closed] == [got]


async def cancel_during_connect(cls: Any) -> None:
    """(b) A is cancelled inside ``await connection_factory()``: its slot goes to B."""
    gate = asyncio.Event()
    f = Factory(gate=gate)
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    a = asyncio.create_task(pool.get_conn())
    await settle()
    b = asyncio.create_task(pool.get_conn())
    await settle()
    assert f.calls == 1 and not b.done()  # A connects, B waits for the slot
    a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a
    gate.set()
    assert await b is f.made[0]
    assert len(f.made) == 1


async def cancelled_waiter_leaves_no_trace(cls: Any) -> None:
    """(c) a waiter cancelled before anything was handed to it took nothing."""
    f = Factory()
    pool = cls("h", maxsize=1, block=True, connection_factory=f)
    held = await pool.get_conn()
    b = asyncio.create_task(pool.get_conn())
    await settle()
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    await put(pool, held)
    assert await pool.get_conn(timeout=0) is held  # not handed to the cancelled waiter
    c = asyncio.create_task(pool.get_conn())
    await settle()
    held.close()
    await put(pool, None)
    assert await c is f.made[1]  # nor the slot


async def default_factory(cls: Any) -> None:
    pool = cls("example.invalid", 8080)
    conn = await pool.get_conn()  # constructing an HTTPConnection does not connect
    assert isinstance(conn, http.client.HTTPConnection)
    assert (conn.host, conn.port) == ("example.invalid", 8080)
    await close(pool)
    await put(pool, conn)


async def bad_arguments(cls: Any) -> None:
    for maxsize in (0, -1, "2", 1.5, True):
        with pytest.raises((ValueError, TypeError)):
            cls("h", maxsize=maxsize)
    for timeout in (-1, float("nan")):
        with pytest.raises((ValueError, TypeError)):
            cls("h", timeout=timeout)
    with pytest.raises((ValueError, TypeError)):
        await cls("h").get_conn(timeout=-1)


SCENARIOS: dict[str, Scenario] = {
    "reuse_lifo": reuse_lifo,
    "nonblocking": nonblocking,
    "times_out": times_out,
    "waiter_gets_returned_conn": waiter_gets_returned_conn,
    "put_none_frees_slot": put_none_frees_slot,
    "close_wakes_and_closes": close_wakes_and_closes,
    "factory_error_gives_slot_back": factory_error_gives_slot_back,
    "cancel_after_handoff_conn": lambda cls: cancel_after_handoff(cls, "conn"),
    "cancel_after_handoff_slot": lambda cls: cancel_after_handoff(cls, "slot"),
    "cancel_during_connect": cancel_during_connect,
    "cancelled_waiter_leaves_no_trace": cancelled_waiter_leaves_no_trace,
    "default_factory": default_factory,
    "bad_arguments": bad_arguments,
}
CORRECT: dict[str, Any] = {"AsyncPool": AsyncPool, "condition_pool": condition_pool.Pool}
# the scenarios each buggy pool fails (its bug), and must fail: see test_buggy_fails_its_own
BUGGY: dict[ModuleType, set[str]] = {
    cancel_swallows_wakeup: {"cancel_after_handoff_conn", "cancel_after_handoff_slot"},
    cancel_during_connect_loses_slot: {"cancel_during_connect",
                                       "factory_error_gives_slot_back"},  # a BaseException
    close_wakes_nobody: {"close_wakes_and_closes"},
    count_after_connect: {"cancel_during_connect", "factory_error_gives_slot_back"},
    put_async_keeps_closed: set(),  # no scenario races a put with close(): see its own test
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("name", CORRECT)
def test_correct_pool(name: str, scenario: str) -> None:
    run(SCENARIOS[scenario](CORRECT[name]))


@pytest.mark.parametrize(
    "module,scenario",
    [(m, s) for m, broken in BUGGY.items() for s in SCENARIOS if s not in broken],
    ids=lambda v: v.__name__.rsplit(".", 1)[-1] if isinstance(v, ModuleType) else v)
def test_buggy_pool_is_otherwise_correct(module: ModuleType, scenario: str) -> None:
    run(SCENARIOS[scenario](module.Pool))


@pytest.mark.parametrize(
    "module,scenario",
    [(m, s) for m, broken in BUGGY.items() for s in sorted(broken)],
    ids=lambda v: v.__name__.rsplit(".", 1)[-1] if isinstance(v, ModuleType) else v)
def test_buggy_fails_its_own(module: ModuleType, scenario: str) -> None:
    """The list above is not a list of excuses: each of those scenarios does fail."""
    with pytest.raises((AssertionError, TimeoutError, asyncio.TimeoutError)):
        asyncio.run(asyncio.wait_for(SCENARIOS[scenario](module.Pool), 0.5))


def test_buggy_modules_name_their_invariant() -> None:
    expected = {cancel_swallows_wakeup: "interrupt-safe",
                cancel_during_connect_loses_slot: "interrupt-safe",
                close_wakes_nobody: "closed", count_after_connect: "bound",
                put_async_keeps_closed: "no-leak"}
    assert {m: m.EXPECTED_INVARIANT for m in BUGGY} == expected
    assert condition_pool.EXPECTED_INVARIANT is None


# -- AsyncPool only ---------------------------------------------------------------------------

def test_async_pool_is_exported_with_the_thread_pools_errors() -> None:
    assert poolcheck.pool.AsyncPool is AsyncPool
    assert "AsyncPool" in poolcheck.pool.__all__

    async def body() -> None:
        pool = AsyncPool("h", maxsize=1, block=True, connection_factory=Factory())
        held = await pool.get_conn()
        with pytest.raises(poolcheck.pool.EmptyPoolError):
            await pool.get_conn(timeout=0)
        pool.close()
        with pytest.raises(poolcheck.pool.ClosedPoolError):
            await pool.get_conn()
        pool.put_conn(held)

    run(body())


def test_async_pool_put_conn_and_close_are_plain_functions() -> None:
    assert not inspect.iscoroutinefunction(AsyncPool.put_conn)
    assert not inspect.iscoroutinefunction(AsyncPool.close)
    assert inspect.iscoroutinefunction(AsyncPool.get_conn)


def test_async_pool_connection_block() -> None:
    async def body() -> None:
        f = Factory()
        pool = AsyncPool("h", maxsize=1, block=True, connection_factory=f)
        async with pool.connection() as conn:
            pass
        async with pool.connection() as again:
            assert again is conn  # returned at the end of the block
        with pytest.raises(ZeroDivisionError):
            async with pool.connection() as broken:
                1 / 0  # noqa: B018
        assert broken.closed  # an exception closes it, and frees its slot
        async with pool.connection(timeout=0) as fresh:
            assert fresh is f.made[1]

    run(body())


def test_async_pool_refuses_a_double_return() -> None:
    async def body() -> None:
        pool = AsyncPool("h", maxsize=2, connection_factory=Factory())
        conn = await pool.get_conn()
        pool.put_conn(conn)
        with pytest.raises(ValueError):
            pool.put_conn(conn)

    run(body())


# -- each bug, shown directly -----------------------------------------------------------------

def test_cancel_swallows_wakeup() -> None:
    async def body() -> None:
        pool = cancel_swallows_wakeup.Pool("h", maxsize=1, block=True,
                                           connection_factory=Factory())
        held = await pool.get_conn()
        b = asyncio.create_task(pool.get_conn())
        await settle()
        c = asyncio.create_task(pool.get_conn())
        await settle()
        pool.put_conn(held)  # wakes B
        b.cancel()  # before B runs: the wake-up dies with it
        await settle()
        assert b.cancelled() and not c.done()  # C sleeps beside an idle connection
        assert await pool.get_conn(timeout=0) is held  # a newcomer takes it at once
        c.cancel()

    run(body())


def test_cancel_during_connect_loses_slot() -> None:
    async def body() -> None:
        _, empty = errors(cancel_during_connect_loses_slot.Pool)
        gate = asyncio.Event()
        f = Factory(gate=gate)
        pool = cancel_during_connect_loses_slot.Pool("h", maxsize=1, block=True,
                                                     connection_factory=f)
        a = asyncio.create_task(pool.get_conn())
        await settle()
        a.cancel()  # while it connects
        await settle()
        assert a.cancelled() and f.made == []
        with pytest.raises(empty):
            await pool.get_conn(timeout=0)  # no connection exists, yet the pool is full

    run(body())


def test_close_wakes_nobody() -> None:
    async def body() -> None:
        closed_error, _ = errors(close_wakes_nobody.Pool)
        pool = close_wakes_nobody.Pool("h", maxsize=1, block=True, connection_factory=Factory())
        held = await pool.get_conn()
        waiter = asyncio.create_task(pool.get_conn())
        await settle()
        pool.close()
        await settle()
        assert not waiter.done()  # still waiting on a closed pool
        pool.put_conn(held)  # only a later wake-up tells it
        with pytest.raises(closed_error):
            await waiter

    run(body())


def test_count_after_connect() -> None:
    async def body() -> None:
        f = Factory(yields=1)  # a connect that yields once, as any real one does
        pool = count_after_connect.Pool("h", maxsize=1, block=True, connection_factory=f)
        a, b = await asyncio.gather(pool.get_conn(), pool.get_conn())
        assert len(f.made) == 2 and a is not b  # two connections exist, maxsize=1

    run(body())


def test_put_async_keeps_closed() -> None:
    async def body() -> None:
        pool = put_async_keeps_closed.Pool("h", maxsize=1, block=True,
                                           connection_factory=Factory())
        assert inspect.iscoroutinefunction(pool.put_conn)
        assert inspect.iscoroutinefunction(pool.close)
        conn = await pool.get_conn()
        returning = asyncio.create_task(pool.put_conn(conn))
        await asyncio.sleep(0)  # put_conn has read _closed and is suspended
        await pool.close()
        await returning
        assert not conn.closed  # left open, idle in the closed pool

    run(body())
