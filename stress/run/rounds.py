"""Many short real-thread rounds, judged; a failure is re-run smaller to show it simply."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from poolcheck.causes import Cause
from poolcheck.judge.judges import Evidence, Finding, history_of, judge
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult, RoundSpec
from poolcheck.observe.history import History
from poolcheck.observe.watchdog import Watchdog
from poolcheck.run.engine import run_round
from poolcheck.run.shrink import shrink_greedily

THREADS = 8
OPS = 30
SHRINK_TRIES = 5  # seeds a smaller round gets to show the race again
MAX_STALLS = 2  # each costs a stall period; more would only repeat the same news


@dataclass
class StressRun:
    rounds: int = 0
    calls: int = 0
    handed_out: int = 0  # successful get_conn calls
    stalled: bool = False
    failures: dict[Invariant, str] = field(default_factory=dict)  # invariant -> report
    found_at: dict[Invariant, float] = field(default_factory=dict)  # ... -> seconds to find
    evidence: dict[Invariant, Evidence] = field(default_factory=dict)  # ... -> history
    causes: dict[Invariant, Cause] = field(default_factory=dict)  # ... -> cause, if known


def round_seed(seed: int, index: int) -> int:
    return zlib.crc32(repr((seed, "stress", index)).encode())


def stress_command(command_spec: str, spec: RoundSpec) -> str:
    block = "--block" if spec.block else "--no-block"
    return (f"poolcheck stress {command_spec} --seed {spec.seed} --threads {spec.threads} "
            f"--ops {spec.ops} --maxsize {spec.maxsize} {block} --seconds 30")


def stress_run(target: Target, seed: int, wanted: set[Invariant], seconds: float,
               shrink_seconds: float, threads: int = THREADS, ops: int = OPS,
               maxsize: int | None = None, block: bool | None = None,
               on_round: Callable[[StressRun], None] | None = None,
               seeds: Callable[[int], int] | None = None,
               on_history: Callable[[History], None] | None = None,
               on_result: Callable[[RoundResult], None] | None = None,
               until_end: bool = False,
               on_failure: Callable[[StressRun, Invariant], None] | None = None) -> StressRun:
    """Rounds until every wanted invariant failed or ``seconds`` ran out.

    ``on_history`` receives each round's contract history (``--record``), ``on_result``
    each round's facts; ``until_end``: go on until ``seconds`` even so (user invariants)."""
    run = StressRun()
    stalls = 0
    stormed = False
    deadline = time.monotonic() + seconds
    next_seed = seeds or (lambda i: round_seed(seed, i))
    # a verdict needs a round in each mode the pool has, however slow the machine: past
    # the deadline, one more round of each mode not yet run (a pool that has only one
    # mode done must not be judged on the rounds that drew the other)
    unrun = set(target.modes) if block is None else {block}
    with Watchdog() as watchdog:
        while (time.monotonic() < deadline or unrun) and (
                until_end or not wanted <= set(run.failures)):
            mode = block if time.monotonic() < deadline else min(unrun)
            spec = RoundSpec.draw(next_seed(run.rounds), threads, ops, maxsize, mode)
            unrun.discard(spec.block)
            if spec.block and not spec.closer and Invariant.TIMEOUT in wanted and not stormed:
                # the first round whose probes run (block, no closer) also runs the storm
                spec, stormed = replace(spec, storm=True), True
            result = run_round(target, spec, watchdog)
            run.rounds += 1
            run.calls += len(result.log.calls)
            run.handed_out += result.log.handed_out
            # a stall costs a stall period, and a second one of what is wanted only repeats
            # the news; one that is not wanted (a focused run) says nothing: go on
            stalls += result.stall is not None and result.stall.invariant in wanted
            if on_result:
                on_result(result)
            history = history_of(result) if on_history else None
            if on_history and history is not None:
                on_history(history)
            run.stalled = run.stalled or (
                result.stall is not None and result.stall.invariant == Invariant.DEADLOCK_FREE)
            for finding in judge(result):
                if finding.invariant in wanted and finding.invariant not in run.failures:
                    run.found_at[finding.invariant] = round(
                        seconds - (deadline - time.monotonic()), 3)
                    smaller = None if result.stall or spec.storm else _shrink(
                        target, spec, finding, watchdog, shrink_seconds)
                    run.failures[finding.invariant] = round_report(
                        target.command_spec, result, finding, smaller)
                    if finding.evidence is not None:
                        run.evidence[finding.invariant] = finding.evidence
                    if finding.cause is not None:
                        run.causes[finding.invariant] = finding.cause
                    if on_failure:
                        on_failure(run, finding.invariant)
            if on_round:
                on_round(run)
            if stalls >= MAX_STALLS:
                break
    return run


def _shrink(target: Target, spec: RoundSpec, finding: Finding, watchdog: Watchdog,
            seconds: float) -> RoundSpec | None:
    """The smallest round (threads, operations) that fails the same way within the budget.

    A race may not recur at once, so each candidate gets several tries with its programs.
    Stalls are not shrunk: every try would cost a stall period.
    """
    def simpler(current: RoundSpec) -> Iterator[RoundSpec]:
        for candidate in (replace(current, threads=max(2, current.threads // 2)),
                          replace(current, ops=max(2, current.ops // 2))):
            if candidate != current:
                for attempt in range(SHRINK_TRIES):
                    yield replace(candidate,
                                  seed=zlib.crc32(repr((candidate, attempt)).encode()))

    def fails(trial: RoundSpec) -> RoundSpec | None:
        result = run_round(target, trial, watchdog)
        same = result.stall is None and any(
            f.invariant == finding.invariant for f in judge(result))
        return trial if same else None

    best = shrink_greedily(spec, simpler, fails, time.monotonic() + seconds)
    return None if best is spec else best


def round_report(command_spec: str, result: RoundResult, finding: Finding,
                 smaller: RoundSpec | None = None) -> str:
    spec = result.spec
    lines = [finding.message.rstrip(), "",
             f"round: {spec.describe()} (seed {spec.seed})",
             "last operations of each thread:"]
    lines += [f"  thread {t}: {'; '.join(ops) or '(none)'}"
              for t, ops in sorted(result.last_ops.items())]
    lines.append("re-run from this round (its programs first; a race may take a few "
                 f"rounds to recur): {stress_command(command_spec, spec)}")
    if smaller is not None:
        lines.append(f"smallest failing round found: {smaller.describe()}, re-run from it: "
                     f"{stress_command(command_spec, smaller)}")
    return "\n".join(lines)
