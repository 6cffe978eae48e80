"""The cooperative primitives behave as threading's do, and the scheduler gives no verdict
where it cannot drive a pool (rather than a false alarm)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from poolcheck.errors import TokenError
from poolcheck.load.targets import Target
from poolcheck.pool import ClosedPoolError, EmptyPoolError, Pool
from poolcheck.run import coop
from poolcheck.run.controlled import PCT, RandomWalk, make_token, read_token, run_controlled
from poolcheck.run.coop import Option, Scheduler
from poolcheck.run.parallel import Program


class Priority:
    """Runs the highest-ranked thread that can run; when none can, the earliest timeout.
    Makes a scenario's interleaving explicit without counting decisions."""

    def __init__(self, *order: int) -> None:
        self.rank = {thread: i for i, thread in enumerate(order)}

    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        ready = [i for i, o in enumerate(options) if not o.timed]
        if ready:
            return min(ready, key=lambda i: self.rank[options[i].thread])
        return min(range(len(options)), key=lambda i: options[i].deadline or 0.0)


def run_threads(chooser: Any, *bodies: Callable[[], None]) -> Scheduler:
    sched = Scheduler(chooser, frozenset(), budget=1000)
    sched.run(list(enumerate(bodies)))
    return sched


def test_event_set_then_clear_wakes_the_waiter() -> None:
    event, seen = coop.Event(), []

    def pulse() -> None:
        coop.sleep(0.1)  # the waiter waits first; then set() and clear() run back to back
        event.set()
        event.clear()

    sched = run_threads(Priority(1, 0), lambda: seen.append(event.wait()), pulse)
    assert sched.outcome is None, sched.outcome
    assert seen == [True]  # threading.Event: set() wakes every waiter, whatever follows


def test_notify_reaching_a_timed_out_waiter_is_spent_on_it() -> None:
    """threading.Condition keeps a timed-out waiter until it has the lock again; a notify()
    in between goes to it (its wait still returns False) and not to the next waiter."""
    cond, seen = coop.Condition(coop.Lock()), []

    def timed() -> None:
        with cond:
            seen.append(("timed", cond.wait(0.5)))

    def notifier() -> None:
        with cond:
            coop.sleep(1.0)  # holds the lock while the timed waiter's timeout passes
            cond.notify()

    def untimed() -> None:
        with cond:
            seen.append(("untimed", cond.wait()))

    sched = run_threads(Priority(0, 2, 1), timed, notifier, untimed)
    assert seen == [("timed", False)]
    assert sched.outcome is not None and sched.outcome[0] == "deadlock"  # nobody wakes it
    assert "thread 2: waits in Condition.wait" in sched.outcome[1]


def test_notify_of_zero_or_less_wakes_nobody() -> None:
    cond, seen = coop.Condition(coop.Lock()), []

    def waiter() -> None:
        with cond:
            seen.append(cond.wait(1.0))

    def notifier() -> None:
        with cond:
            cond.notify(-1)
            cond.notify(0)

    sched = run_threads(Priority(0, 1, 2), waiter, waiter, notifier)
    assert sched.outcome is None
    assert seen == [False, False]  # both timed out: neither notify woke one


def test_rlock_rejects_a_negative_timeout_like_threading() -> None:
    with pytest.raises(ValueError):
        threading.RLock().acquire(timeout=-5)
    with pytest.raises(ValueError):
        coop.RLock().acquire(timeout=-5)


# -- pools the scheduler must drive without false alarms -----------------------------------


class PollingPool(Pool):
    """Correct: polls every millisecond instead of waiting on the condition."""

    def get_conn(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._closed:
                    raise ClosedPoolError("closed")
                if self._idle:
                    return self._idle.popitem()[1]
                if self._live < self.maxsize or not self.block:
                    self._live += 1
                    break
            if deadline is not None and time.monotonic() >= deadline:
                raise EmptyPoolError("timed out")
            self.pause()
        try:
            return self._factory()
        except BaseException:
            self._release_slot()
            raise

    def pause(self) -> None:
        time.sleep(0.001)


class SpinningOnTheClock(PollingPool):
    """Correct: spins on the clock until its deadline, without sleeping."""

    def pause(self) -> None:
        pass


class ClockAsAttribute(Pool):
    """Correct: the clock is a class attribute and a default argument (test seams)."""

    clock = time.monotonic

    def get_conn(self, timeout: float | None = None, now: Callable[[], float] = time.monotonic
                 ) -> Any:
        assert self.clock() <= now() + 1.0  # type: ignore[misc]  # a builtin: no self
        return super().get_conn(timeout)


@pytest.mark.parametrize("cls", [PollingPool, SpinningOnTheClock, ClockAsAttribute])
def test_correct_pools_with_clocks_pass(cls: type[Pool]) -> None:
    program = Program(("get",), (("get",), ("get", "put")))
    for chooser in (RandomWalk(1), RandomWalk(2), PCT(1), PCT(2)):
        run = run_controlled(Target.of(cls), program, 1, True, chooser)
        assert not run.failed, run.report()


def test_clock_attributes_and_defaults_are_restored() -> None:
    run_controlled(Target.of(ClockAsAttribute), Program(("get",), ()), 1, True, RandomWalk(0))
    assert ClockAsAttribute.__dict__["clock"] is time.monotonic
    assert ClockAsAttribute.get_conn.__defaults__ == (None, time.monotonic)


def test_spinning_past_every_timeout_is_a_livelock() -> None:
    class IgnoresItsDeadline(Pool):
        def get_conn(self, timeout: float | None = None) -> Any:
            while True:
                time.monotonic()  # time passes, but nothing ends the loop

    start = time.monotonic()
    run = run_controlled(Target.of(IgnoresItsDeadline), Program(("get",), ()), 1, True,
                         RandomWalk(0), get_timeout=0.1)
    assert run.kind == "livelock", run.report()
    assert "virtual seconds" in run.message
    assert time.monotonic() - start < 30


def test_a_thread_the_pool_starts_gives_no_verdict() -> None:
    class Reaper(Pool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.reaper = threading.Thread(target=self._reap, daemon=True)
            self.reaper.start()

        def _reap(self) -> None:
            for _ in range(3):
                with self._cond:
                    pass

    run = run_controlled(Target.of(Reaper), Program(("get", "put"), (("get",), ("get",))),
                         1, True, RandomWalk(0))
    assert run.kind == "unmanaged" and run.no_verdict, run.report()
    assert "does not manage" in run.message


# -- replay tokens ----------------------------------------------------------------------------


def test_token_keeps_a_non_default_budget() -> None:
    token = make_token(Target.of(Pool), Program(("get",), ()), 1, True, [1, 0], budget=77)
    assert read_token(token)["budget"] == 77


def test_token_with_nested_lists_is_damaged_not_a_crash() -> None:
    import base64
    import json
    import zlib

    data = {"target": "poolcheck.pool:Pool", "adapter": "auto", "maxsize": 1, "block": True,
            "prefix": [["get"]], "branches": [], "choices": []}
    body = base64.urlsafe_b64encode(zlib.compress(json.dumps(data).encode())).decode()
    with pytest.raises(TokenError):
        read_token("pc1." + body)
