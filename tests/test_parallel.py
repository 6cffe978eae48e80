"""Parallel programs: drawn by Hypothesis, run on threads, judged, shrunk to the smallest."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from poolcheck.judge import linearize
from poolcheck.load.targets import Target, load
from poolcheck.observe.watchdog import Watchdog
from poolcheck.pool import Pool
from poolcheck.run import parallel
from poolcheck.run.checks import run_checks
from poolcheck.run.parallel import Program, Search, run_program
from poolcheck.settings import PROFILES, Profile

ROOT = Path(__file__).resolve().parent.parent
GENEROUS = 60.0  # seconds: the search stops at the first failure, long before this
# a second seed of each race: behind the slow marker (tox -e slow)
SEEDS = [1, pytest.param(2, marks=pytest.mark.slow)]


class GetChecksRoomOutsideLock(Pool):
    """block=True: two callers both see room for one more and both connect."""

    def get_conn(self, timeout: float | None = None) -> Any:
        if not self._closed and not self._idle and self._live < self.maxsize:  # BUG
            with self._cond:
                self._live += 1
            try:
                return self._factory()
            except BaseException:
                self._release_slot()
                raise
        return super().get_conn(timeout)


class GetNeverReturns(Pool):
    def get_conn(self, timeout: float | None = None) -> Any:
        threading.Event().wait()  # waits for ever, whatever the timeout


def _search(target: Target, maxsize: int, block: bool, seed: int) -> Search:
    found = Search()
    with Watchdog() as watchdog:
        parallel.search(target, maxsize, block, seed, 100_000, 10,
                        time.monotonic() + GENEROUS, GENEROUS, found, watchdog)
    return found


def test_program_lanes() -> None:
    program = Program.of([(3, "get"), (0, "get"), (1, "put"), (3, "close"), (0, "fail")])
    assert program == Program(("get", "fail"), (("put",), ("get", "close")))
    assert "branch (thread 2): get, close" in program.describe()
    # fewer operations first, then fewer branches, then fewer outside the prefix
    assert Program(("get", "get"), (("put",), ("put",))).size < Program(
        (), (("get", "put"), ("get", "put"))).size


def test_runs_record_threads_and_deal_the_prefix_connections() -> None:
    program = Program(("get", "get"), (("put",), ("put", "get")))
    with Watchdog() as watchdog:
        run = run_program(Target.of(Pool), program, 2, False, 1, watchdog)
    assert run.history is not None and not run.hung
    by_thread = {t: [e.describe() for e in run.history.events if e.thread == t]
                 for t in run.history.threads}
    assert by_thread[0] == ["get -> 1", "get -> 2"]
    assert by_thread[1] == ["put 1 kept"]
    assert by_thread[2][0] == "put 2 kept"  # each branch got one of the prefix's two
    assert linearize.check(run.history).ok


@pytest.mark.parametrize("seed", SEEDS)
def test_finds_a_room_check_outside_the_lock_with_the_smallest_program(seed: int) -> None:
    """get_conn counts the new connection only after connecting: two gets are enough."""
    found = _search(load(f"{ROOT}/examples/buggy/count_outside_lock.py:Pool"), 1, True, seed)
    assert found.failure is not None
    assert found.failure.program == Program((), (("get",), ("get",)))
    assert "bound" in found.failure.report()


@pytest.mark.parametrize("seed", SEEDS)
def test_finds_a_get_that_checks_room_outside_the_lock(seed: int) -> None:
    found = _search(Target.of(GetChecksRoomOutsideLock), 1, True, seed)
    assert found.failure is not None
    assert found.failure.program == Program((), (("get",), ("get",)))
    assert "bound" in found.failure.report()


def test_a_hanging_pool_ends_the_search_without_hanging_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PROGRAM_LIMIT", 1.0)  # the pool never returns anyway
    started = time.monotonic()
    found = _search(Target.of(GetNeverReturns), 1, True, 3)
    assert found.failure is None and found.hang is not None
    assert "did not finish" in found.hang
    assert time.monotonic() - started < GENEROUS


def test_a_hung_run_records_its_calls_as_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PROGRAM_LIMIT", 1.0)  # the pool never returns anyway
    with Watchdog() as watchdog:
        run = run_program(Target.of(GetNeverReturns), Program(("get",), ()), 1, True, 1,
                          watchdog)
    assert run.hung and run.history is not None
    assert [e.describe() for e in run.history.events] == ["get -> pending"]


@pytest.mark.parametrize("profile", [
    replace(PROFILES["quick"], parallel_seconds=1),
    pytest.param(PROFILES["quick"], marks=pytest.mark.slow)], ids=["1s", "quick"])
@pytest.mark.parametrize("spec", [
    "poolcheck.pool:Pool", f"{ROOT}/examples/correct/condition_fifo.py:Pool",
    f"{ROOT}/examples/correct/queue_placeholders.py:Pool"])
def test_correct_pools_pass(spec: str, profile: Profile) -> None:
    result, = run_checks(load(spec), profile, 5, only=["parallel/linearizable"])
    assert result.status == "passed", result.message
    assert "parallel programs" in result.message


def test_the_check_reports_the_program_and_how_to_rerun_it() -> None:
    target = load(f"{ROOT}/examples/buggy/count_outside_lock.py:Pool")
    result, = run_checks(target, PROFILES["ci"], 4, only=["parallel/linearizable"])
    assert result.status == "failed"
    assert "branch (thread 1)" in result.message and "NOT LINEARIZABLE" in result.message
    assert result.reproduce.endswith("--seed 4 --check parallel/linearizable")
    assert result.evidence is not None and not result.evidence[1].ok
