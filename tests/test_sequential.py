"""The sequential state machine: passes the bundled pool, names the bug of each broken one."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.watchdog import Watchdog
from poolcheck.pool import Pool
from poolcheck.run.checks import all_checks, run_checks
from poolcheck.run.rounds import stress_run
from poolcheck.run.sequential import ANY, Session, machine_for
from poolcheck.settings import PROFILES, Profile

from tests import sequential_bugs

QUICK = PROFILES["quick"]
# every check, briefly (as the catalogue's correct pools): a false alarm still fails
BRIEF = replace(QUICK, examples=5, steps=15, stress_seconds=2, parallel_seconds=1)

# The bundled pool driven by Hypothesis directly, every invariant at once, under the
# test profile (ci: derandomized): both modes and several sizes.
for _maxsize, _block in [(1, True), (3, True), (2, False)]:
    _machine = machine_for(Target.of(Pool), _maxsize, _block, ANY, Session(), Watchdog())
    globals()[f"Test{_machine.__name__}"] = _machine.TestCase


def failed_invariants(cls: type, seed: int = 1, only: list[str] | None = None) -> dict[str, str]:
    results = run_checks(Target.of(cls), QUICK, seed, only=only)
    return {str(r.invariant): r.status for r in results if r.status != "passed"}


# By default the catalogue runs every check on the bundled pool, briefly (seed 11).
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_bundled_pool_passes(seed: int) -> None:
    assert failed_invariants(Pool, seed) == {}


@pytest.mark.parametrize("name", sorted(sequential_bugs.BUGS))
def test_each_bug_is_named(name: str) -> None:
    """By the sequential check of its invariant alone (in a full run, the slow test below,
    the stress rounds use up their time on the invariants the bug does not break)."""
    expected = sequential_bugs.BUGS[name]
    failed = failed_invariants(getattr(sequential_bugs, name), only=[f"sequential/{expected}"])
    assert failed == {expected: "failed"}, failed


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(sequential_bugs.BUGS))
def test_each_bug_is_named_in_a_full_run(name: str) -> None:
    expected = sequential_bugs.BUGS[name]
    failed = failed_invariants(getattr(sequential_bugs, name))
    assert failed.get(expected) == "failed", failed


def test_violation_report_has_program_and_reproduce_command() -> None:
    target = Target.of(sequential_bugs.NonBlockKeepsEverything)
    [result] = run_checks(target, QUICK, 7, only=["sequential/bound"])
    assert result.status == "failed"
    assert "steps, each call and what it gave (maxsize=1, block=False)" in result.message
    assert "put_conn(#1) -> kept it" in result.message
    assert result.reproduce.endswith("--seed 7 --check sequential/bound")


class HangsOnSecondGet(Pool):
    """Deadlocks: takes its own lock a second time."""

    calls = 0

    def get_conn(self, timeout: float | None = None) -> Any:
        self.calls += 1
        if self.calls == 2:
            self._cond.acquire()
            self._cond.acquire()
        return super().get_conn(timeout)


def test_hang_is_reported_once_with_stack() -> None:
    sequential_only = [c.name for c in all_checks() if c.name.startswith("sequential/")]
    results = {str(r.invariant): r for r in run_checks(Target.of(HangsOnSecondGet), QUICK, 3,
                                                  only=sequential_only)}
    hang = results["deadlock-free"]
    assert hang.status == "failed"
    assert "get_conn" in hang.message and "acquire" in hang.message
    assert {r.status for name, r in results.items() if name != "deadlock-free"} == {"error"}


class IgnoresItsOwnTimeout(Pool):
    """get_conn(timeout=None) waits for ever instead of using the pool's timeout."""

    def get_conn(self, timeout: float | None = None) -> Any:
        if timeout is not None:
            return super().get_conn(timeout)
        saved, self.timeout = self.timeout, None  # (one caller at a time: sequential only)
        try:
            return super().get_conn(None)
        finally:
            self.timeout = saved


@pytest.mark.parametrize("profile", [replace(QUICK, examples=8),
                                     pytest.param(QUICK, marks=pytest.mark.slow)],
                         ids=["8-examples", "quick"])
def test_a_get_past_its_timeout_fails_timeout_only(profile: Profile) -> None:
    """The other sequential checks still reach a verdict: they stop drawing that call.
    (The watchdog's own limit: a shorter one made a call slowed by a loaded machine a hang.)"""
    sequential_only = [c.name for c in all_checks() if c.name.startswith("sequential/")]
    results = {str(r.invariant): r for r in run_checks(Target.of(IgnoresItsOwnTimeout), profile,
                                                  3, only=sequential_only)}
    assert results["timeout"].status == "failed"
    assert "get_conn(timeout=None) [the pool's timeout: 0.005 s] waited past its timeout" in (
        results["timeout"].message)
    assert {n: r.status for n, r in results.items() if r.status != "passed"} == {
        "timeout": "failed"}


def test_stress_names_a_deadlock_not_a_timeout() -> None:
    [result] = run_checks(Target.of(HangsOnSecondGet), QUICK, 3,
                          only=["stress/deadlock-free"])
    assert result.status == "failed", result.message
    assert "acquire" in result.message


class NonBlockingOnly(Pool):
    """A pool half done (step 1 of the starter kit): block=True not written yet."""

    def get_conn(self, timeout: float | None = None) -> Any:
        if self.block:
            raise NotImplementedError("block=True")
        return super().get_conn(timeout)


def test_stress_rounds_run_each_mode_however_short_the_budget() -> None:
    """No time left (a loaded machine): still one round of each mode, so a pool that hands
    out connections in one of them is exercised, not judged on the other's rounds."""
    run = stress_run(Target.of(NonBlockingOnly), 11, {Invariant.EXCLUSIVE}, 0.0, 0.0)
    assert run.rounds == 2
    assert run.handed_out > 0


class NoClose:
    """A pool without close(): the checks that need it fail as not implemented."""

    def __init__(self, host: str, port: int | None = None, *, maxsize: int = 1,
                 block: bool = False, timeout: float | None = None,
                 connection_factory: Any = None) -> None:
        self._pool = Pool(host, port, maxsize=maxsize, block=block, timeout=timeout,
                          connection_factory=connection_factory)

    def get_conn(self, timeout: float | None = None) -> Any:
        return self._pool.get_conn(timeout)

    def put_conn(self, conn: Any) -> None:
        self._pool.put_conn(conn)


@pytest.mark.parametrize("profile", [BRIEF, pytest.param(QUICK, marks=pytest.mark.slow)],
                         ids=["brief", "quick"])
def test_pool_without_close(profile: Profile) -> None:
    """Every check runs: the two that need close() fail as not implemented, the rest pass."""
    results = run_checks(Target.of(NoClose), profile, 1)
    assert {r.name: r.status for r in results if r.status != "passed"} == {
        "sequential/closed": "failed", "stress/closed": "failed"}
    assert all("not implemented" in r.message for r in results if r.status == "failed")


class RaisesOnPut(Pool):
    def put_conn(self, conn: Any) -> None:
        if threading.current_thread() is not threading.main_thread() and conn is not None:
            raise RuntimeError("oops")
        super().put_conn(conn)


@pytest.mark.parametrize("only", [["sequential/errors"],
                                  pytest.param(None, marks=pytest.mark.slow)],
                         ids=["sequential", "every-check"])
def test_unexpected_exception_breaks_errors(only: list[str] | None) -> None:
    """It raises only off the main thread: every check calls the pool from other threads
    (the sequential one through its watchdog)."""
    assert failed_invariants(RaisesOnPut, only=only).get("errors") == "failed"
