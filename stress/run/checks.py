"""The checks `poolcheck check` runs, their profiles, and their results."""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.reporting import with_reporter
from hypothesis.stateful import run_state_machine_as_test
from poolcheck.causes import Cause
from poolcheck.judge.judges import Evidence
from poolcheck.judge.user import UserInvariant
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult, Step
from poolcheck.observe.history import History
from poolcheck.observe.watchdog import Watchdog
from poolcheck.run import parallel
from poolcheck.run.rounds import StressRun, stress_run
from poolcheck.run.sequential import Session, Violation, machine_for
from poolcheck.settings import (
    CONFIGURATIONS,
    PARALLEL_EXAMPLES,
    PROGRAM_CONFIGURATIONS,
    Profile,
)

Status = Literal["passed", "failed", "error", "timeout"]


SEQUENTIAL_INVARIANTS = [
    Invariant.DEADLOCK_FREE, Invariant.ERRORS, Invariant.BOUND, Invariant.EXCLUSIVE,
    Invariant.NO_LEAK, Invariant.CAPACITY, Invariant.CLOSED, Invariant.TIMEOUT,
]
STRESS_INVARIANTS = [*SEQUENTIAL_INVARIANTS, Invariant.WAKEUP, Invariant.LINEARIZABLE]
# what a controlled run's order of events shows (its times are virtual: no timeout, wakeup)
CONTROLLED_INVARIANTS = [
    Invariant.DEADLOCK_FREE, Invariant.ERRORS, Invariant.BOUND, Invariant.EXCLUSIVE,
    Invariant.NO_LEAK, Invariant.CAPACITY, Invariant.CLOSED, Invariant.LINEARIZABLE,
    Invariant.INTERRUPT_SAFE,
]


@dataclass
class CheckResult:
    name: str
    invariant: Invariant | UserInvariant  # a contract's invariant, or one a user added
    status: Status
    message: str
    reproduce: str
    seconds: float = 0.0  # this check's time; checks that share one run share its time
    evidence: Evidence | None = None  # the failing history, for --html
    found_after: float | None = None  # a shared stress run: when this violation showed
    cause: Cause | None = None  # what the run showed beyond the invariant, if anything

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "invariant": str(self.invariant), "status": self.status,
            "message": self.message, "reproduce": self.reproduce, "seconds": self.seconds}
        if self.found_after is not None:
            out["found_after"] = self.found_after
        if self.cause is not None:
            out["cause"] = self.cause
        return out


@dataclass(frozen=True)
class Check:
    name: str
    invariant: Invariant
    needs_close: bool = False
    default: bool = True  # run when no check is named (`--check`, a grading config)


PARALLEL = Check("parallel/linearizable", Invariant.LINEARIZABLE)
CONTROLLED = Check("controlled/linearizable", Invariant.LINEARIZABLE, default=False)
NO_CLOSE = "not implemented: the pool has no close() method"
STRESS_ROUNDS = "stress/*"  # what a stress run that only observes says it starts
NOT_EXERCISED = ("not exercised: get_conn never returned a connection, so this check "
                 "tested nothing (the pool must hand out connections before it can keep "
                 "the contract)")
HistorySink = Callable[[str, History], None]  # (which check ran it, the history)
FactsSink = Callable[[RoundResult], None]  # the facts of a controlled run, judged again
ExampleSink = Callable[[str, int, bool, list[Step]], None]  # (check, maxsize, block, steps)


def all_checks() -> list[Check]:
    return [Check(f"sequential/{inv}", inv, needs_close=inv == Invariant.CLOSED)
            for inv in SEQUENTIAL_INVARIANTS] + [
        Check(f"stress/{inv}", inv, needs_close=inv == Invariant.CLOSED)
        for inv in STRESS_INVARIANTS] + [PARALLEL] + controlled_checks()


def controlled_checks() -> list[Check]:
    return [CONTROLLED if inv == Invariant.LINEARIZABLE else
            Check(f"controlled/{inv}", inv, needs_close=inv == Invariant.CLOSED, default=False)
            for inv in CONTROLLED_INVARIANTS]


def default_checks() -> list[str]:
    return [c.name for c in all_checks() if c.default]


def verdict(results: list[CheckResult]) -> Literal["pass", "fail"]:
    """``pass`` only when checks ran and every one passed: nothing run is no pass."""
    return "pass" if results and all(r.status == "passed" for r in results) else "fail"


def derive_seed(seed: int, *parts: object) -> int:
    """A per-check seed that is stable across runs and Python versions."""
    return zlib.crc32(repr((seed, *parts)).encode())


def reproduce_command(target: str, check: str, seed: int, profile: str) -> str:
    return f"poolcheck check {target} --profile {profile} --seed {seed} --check {check}"


def run_checks(target: Target, profile: Profile, seed: int, only: list[str] | None = None,
               progress: Callable[[CheckResult], None] | None = None,
               record: HistorySink | None = None,
               starting: Callable[[list[str]], None] | None = None,
               observe: Callable[[RoundResult], None] | None = None,
               stress_first: bool = False, observe_all: bool = False,
               examples: ExampleSink | None = None,
               controlled_facts: FactsSink | None = None) -> list[CheckResult]:
    """Run the chosen checks in order: each sequential one, the stress checks together
    (one run, every judge; ``stress_first``: before the sequential ones), then the
    parallel one. ``starting`` hears which checks are
    about to run, ``progress`` each result as it comes, ``observe`` the facts of every
    stress round; ``observe_all`` (user invariants): the rounds then run their whole time,
    even if no stress check is chosen; ``examples`` the steps of every sequential program;
    ``controlled_facts`` the facts of every controlled run.
    ``only=None``: the default checks."""
    session = Session()
    results: list[CheckResult] = []
    chosen = [c for c in all_checks() if (c.name in only if only is not None else c.default)]

    def report(result: CheckResult) -> None:
        results.append(result)
        if progress:
            progress(result)

    def stress() -> None:
        stress_checks = [c for c in chosen if c.name.startswith("stress/")]
        if stress_checks or (observe and observe_all):
            if starting:
                starting([c.name for c in stress_checks] or [STRESS_ROUNDS])
            for result in run_stress_checks(target, profile, seed, stress_checks, record,
                                            observe, early=report, observe_all=observe_all):
                report(result)

    if stress_first:  # the rounds find most bugs first: a verdict for -x in seconds
        stress()
    for check in (c for c in chosen if c.name.startswith("sequential/")):
        if starting:
            starting([check.name])
        started = time.monotonic()
        if examples is not None:
            session.on_example = functools.partial(examples, check.name)
        result = _run_one(check, target, profile, seed, session)
        result.seconds = round(time.monotonic() - started, 3)
        report(result)
    if not stress_first:
        stress()
    if PARALLEL in chosen:
        if starting:
            starting([PARALLEL.name])
        report(run_parallel_check(target, profile, seed, record))
    controlled = [c for c in chosen if c.name.startswith("controlled/")]
    if controlled:
        if starting:
            starting([c.name for c in controlled])
        for result in run_controlled_checks(target, profile, seed, controlled, record,
                                            controlled_facts):
            report(result)
    order = {c.name: i for i, c in enumerate(all_checks())}
    return sorted(results, key=lambda r: order[r.name])  # failures found early came first


def run_controlled_checks(target: Target, profile: Profile, seed: int, checks: list[Check],
                          record: HistorySink | None = None,
                          facts: FactsSink | None = None) -> list[CheckResult]:
    """Small programs under a scheduler that runs one thread at a time (poolcheck.run.controlled),
    every run judged for every chosen invariant; a failure comes with its replay token.

    A run the scheduler could not drive (a primitive it did not replace, a thread the pool
    started) is no verdict on the pool: the checks report that they cannot drive it."""
    from poolcheck.run import controlled

    started = time.monotonic()

    def seen(run: controlled.ControlledRun) -> None:
        if record is not None and run.history is not None:
            record("controlled", run.history)
        if facts is not None and run.facts is not None:
            facts(run.facts)

    out = controlled.check_target(target, derive_seed(seed, CONTROLLED.name),
                                  profile.parallel_seconds, on_run=seen,
                                  shrink_seconds=profile.shrink_seconds,
                                  wanted=[c.invariant for c in checks
                                          if not (c.needs_close and not target.has_close)])
    seconds = round((time.monotonic() - started) / len(checks), 3)
    results = []
    for check in checks:
        reproduce = reproduce_command(target.command_spec, check.name, seed, profile.name)
        failure = out.failures.get(check.invariant)
        if out.stuck is not None:
            results.append(CheckResult(
                check.name, check.invariant, "error", "not completed: the scheduler could not "
                "drive this pool (a lock, queue or thread outside its control), which says "
                f"nothing about the pool\n{out.stuck.message}", reproduce, seconds,
                cause=Cause.CANNOT_DRIVE))
        elif check.needs_close and not target.has_close:
            results.append(CheckResult(check.name, check.invariant, "failed", NO_CLOSE,
                                       reproduce, seconds, cause=Cause.NOT_IMPLEMENTED))
        elif failure is None and not out.handed_out and check.invariant != Invariant.ERRORS:
            results.append(CheckResult(check.name, check.invariant, "failed", NOT_EXERCISED,
                                       reproduce, seconds, cause=Cause.NOT_EXERCISED))
        elif failure is not None:
            evidence = ((failure.history, failure.result) if check.invariant ==
                        Invariant.LINEARIZABLE and failure.history is not None
                        and failure.result is not None else None)
            own = controlled.invariant_of(failure) == check.invariant
            report = failure.report() if own \
                else controlled.format_failure(failure, check.invariant)
            results.append(CheckResult(check.name, check.invariant, "failed", report,
                                       f"poolcheck replay {failure.token}", seconds, evidence,
                                       cause=failure.cause if own else None))
        else:
            results.append(CheckResult(check.name, check.invariant, "passed",
                                       f"no violation in {out.runs} controlled runs",
                                       reproduce, seconds))
    return results


def run_stress_checks(target: Target, profile: Profile, seed: int, checks: list[Check],
                      record: HistorySink | None = None,
                      observe: Callable[[RoundResult], None] | None = None,
                      early: Callable[[CheckResult], None] | None = None,
                      observe_all: bool = False) -> list[CheckResult]:
    """Real-thread rounds for every stress check at once: one run, every judge. ``early``
    hears each failed check as soon as it is found (and shrunk); the list returned holds
    the others."""
    started = time.monotonic()
    wanted = {c.invariant for c in checks}
    only_mode = next(iter(target.modes)) if len(target.modes) == 1 else None
    sent: set[str] = set()

    def found(run: StressRun, invariant: Invariant) -> None:
        if early is None:
            return
        for check in (c for c in checks if c.invariant == invariant):
            sent.add(check.name)
            early(CheckResult(check.name, invariant, "failed", run.failures[invariant],
                              reproduce_command(target.command_spec, check.name, seed,
                                                profile.name),
                              run.found_at[invariant], run.evidence.get(invariant),
                              run.found_at[invariant], run.causes.get(invariant)))

    run = stress_run(target, seed, wanted, profile.stress_seconds, profile.shrink_seconds,
                     block=only_mode,
                     on_history=(lambda h: record("stress", h)) if record else None,
                     on_result=observe, until_end=observe_all,
                     on_failure=found)
    seconds = round((time.monotonic() - started) / max(1, len(checks)), 3)
    results = []
    for check in (c for c in checks if c.name not in sent):
        reproduce = reproduce_command(target.command_spec, check.name, seed, profile.name)
        found_after: float | None = None
        cause: Cause | None = None
        if check.needs_close and not target.has_close:
            status: Status = "failed"
            message, cause = NO_CLOSE, Cause.NOT_IMPLEMENTED
        elif check.invariant in run.failures:
            status, message = "failed", run.failures[check.invariant]
            found_after = run.found_at[check.invariant]
            cause = run.causes.get(check.invariant)
        elif run.stalled and check.invariant != Invariant.DEADLOCK_FREE:
            status, message = "error", "not completed: the pool hangs (see deadlock-free)"
            cause = Cause.NOT_COMPLETED
        elif not run.handed_out and check.invariant != Invariant.ERRORS:
            status, message, cause = "failed", NOT_EXERCISED, Cause.NOT_EXERCISED
        else:
            status, message = "passed", (f"no violation in {run.rounds} rounds "
                                         f"({run.calls} calls, 8 threads)")
        results.append(CheckResult(check.name, check.invariant, status, message, reproduce,
                                   seconds, run.evidence.get(check.invariant),
                                   found_after, cause))
    return results


def run_parallel_check(target: Target, profile: Profile, seed: int,
                       record: HistorySink | None = None) -> CheckResult:
    """Parallel programs from Hypothesis on each configuration, until one fails."""
    reproduce = reproduce_command(target.command_spec, PARALLEL.name, seed, profile.name)
    started = time.monotonic()
    found = parallel.Search(on_history=(lambda h: record("parallel", h)) if record else None)
    with Watchdog() as watchdog:
        configs = [c for c in PROGRAM_CONFIGURATIONS if c[1] in target.modes]
        share = profile.parallel_seconds / len(configs)
        for i, (maxsize, block) in enumerate(configs):
            parallel.search(target, maxsize, block,
                            derive_seed(seed, PARALLEL.name, maxsize, block),
                            PARALLEL_EXAMPLES, profile.parallel_runs,
                            started + share * (i + 1), profile.shrink_seconds, found,
                            watchdog)
            if found.failure is not None or found.hang is not None:
                break
    seconds = round(time.monotonic() - started, 3)
    if found.failure is not None:
        assert found.failed_at is not None
        return CheckResult(PARALLEL.name, PARALLEL.invariant, "failed",
                           found.failure.report(), reproduce,
                           round(found.failed_at - started, 3),
                           (found.failure.history, found.failure.result))
    if found.hang is not None:
        return CheckResult(PARALLEL.name, PARALLEL.invariant, "error",
                           f"not completed: the pool hangs (see deadlock-free)\n{found.hang}",
                           reproduce, seconds, cause=Cause.NOT_COMPLETED)
    if not found.handed_out:
        return CheckResult(PARALLEL.name, PARALLEL.invariant, "failed", NOT_EXERCISED,
                           reproduce, seconds, cause=Cause.NOT_EXERCISED)
    return CheckResult(PARALLEL.name, PARALLEL.invariant, "passed",
                       f"no violation in {found.programs} parallel programs "
                       f"({found.runs} runs of 1 to {parallel.LANES + 1} threads)",
                       reproduce, seconds)


def _run_one(check: Check, target: Target, profile: Profile, seed: int,
             session: Session) -> CheckResult:
    reproduce = reproduce_command(target.command_spec, check.name, seed, profile.name)

    def result(status: Status, message: str, cause: Cause | None = None) -> CheckResult:
        return CheckResult(check.name, check.invariant, status, message, reproduce,
                           cause=cause)

    if check.needs_close and not target.has_close:
        return result("failed", NO_CLOSE, Cause.NOT_IMPLEMENTED)
    handed_out = session.handed_out
    with Watchdog() as watchdog:
        for maxsize, block in (c for c in CONFIGURATIONS if c[1] in target.modes):
            if session.hang is not None:
                break
            # once more if a get waited past its timeout midway (the rest of the run was
            # skipped): the retry no longer draws that timeout
            for _ in range(2):
                avoided = session.avoid
                failure = _run_machine(target, maxsize, block, check.invariant, profile,
                                       derive_seed(seed, check.name, maxsize, block),
                                       session, watchdog)
                if failure is not None or session.avoid == avoided or session.hang is not None:
                    break
            if failure is not None:
                return result("failed", failure.message, failure.cause)
    slow = session.slow_get
    if slow is not None and check.invariant in slow.invariants:
        return result("failed", slow.describe("waited past its timeout", "waiting"))
    if session.hang is not None:
        hang = session.hang
        if check.invariant in hang.invariants:
            return result("failed", hang.describe("hung", "hung"))
        return result("error", "not completed: the pool hangs (see "
                      f"{', '.join(sorted(hang.invariants))})", Cause.NOT_COMPLETED)
    if session.handed_out == handed_out and check.invariant != Invariant.ERRORS:
        return result("failed", NOT_EXERCISED, Cause.NOT_EXERCISED)
    return result("passed", "no violation found")


# Typed here: older Hypothesis releases leave it untyped, newer ones type it.
run_machine: Callable[..., None] = run_state_machine_as_test


def _run_machine(target: Target, maxsize: int, block: bool, focus: str, profile: Profile,
                 seed: int, session: Session, watchdog: Watchdog) -> Violation | None:
    machine = hypothesis_seed(seed)(
        machine_for(target, maxsize, block, focus, session, watchdog))
    config = settings(
        max_examples=profile.examples,
        stateful_step_count=profile.steps,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
        verbosity=Verbosity.normal,
        print_blob=False,
    )
    try:
        with with_reporter(lambda text: None):  # the report is ours to write
            run_machine(machine, settings=config)
    except Violation as v:
        # raised by the replay of the shrunk program: its trail is the smallest program
        return v
    except Flaky as exc:
        first = next(_violations(exc), None)
        if first is None:
            # no violation: the pool answered differently when a program was replayed (a
            # hang changed what the replays did, and is reported; or the pool depends on
            # time or on a thread of its own, which the contract allows). Hypothesis
            # stops there: what ran until then is the verdict, never the pool's "crash".
            return None
        return Violation(first.invariant, f"{first.message}\n(seen once; it did not recur "
                         "when re-run)", first.cause)
    return None


def _violations(exc: BaseException) -> Iterator[Violation]:
    if isinstance(exc, Violation):
        yield exc
    for inner in getattr(exc, "exceptions", ()):
        yield from _violations(inner)
