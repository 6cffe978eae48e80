"""How hard poolcheck looks, and how late is late: every budget and slack, in one place.

Nothing here imports anything of poolcheck's, so every stage reads the same numbers. The
slacks are far above what a correct pool shows on a loaded 2-core machine and far below
what the bugs they catch produce; change one and run ``bench/sweep.py`` before and after.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    examples: int  # Hypothesis examples per sequential configuration
    steps: int  # ... and steps per example
    stress_seconds: float  # real-thread rounds, for all stress checks together
    shrink_seconds: float  # re-running a failure smaller
    parallel_seconds: float  # drawing parallel programs, over every configuration
    parallel_runs: int  # runs of each parallel program (a race need not recur at once)


PROFILES = {
    "quick": Profile("quick", examples=25, steps=25, stress_seconds=10, shrink_seconds=4,
                     parallel_seconds=4, parallel_runs=10),
    "ci": Profile("ci", examples=60, steps=40, stress_seconds=30, shrink_seconds=10,
                  parallel_seconds=12, parallel_runs=10),
    "thorough": Profile("thorough", examples=300, steps=60, stress_seconds=180,
                        shrink_seconds=30, parallel_seconds=60, parallel_runs=20),
}
PARALLEL_EXAMPLES = 100_000  # the time budget ends the search, not a count

Configuration = tuple[int, bool]  # (maxsize, block)
# One caller at a time and the stress rounds: both modes, and sizes where "one more" and
# "one fewer" differ.
CONFIGURATIONS: tuple[Configuration, ...] = ((1, False), (2, False), (1, True), (2, True),
                                             (3, True))
# Small parallel programs: a race needs one connection too few, so the smallest sizes.
# Real threads try the blocking modes first; the controlled scheduler the non-blocking
# ones, where nothing waits (a one-line put_conn race: 0.01 s instead of 1.3 s to the
# first failing schedule, bench/controlled_vs_stress.py).
PROGRAM_CONFIGURATIONS: tuple[Configuration, ...] = ((1, True), (2, True), (1, False),
                                                     (2, False))
CONTROLLED_CONFIGURATIONS: tuple[Configuration, ...] = ((1, False), (2, False), (1, True),
                                                        (2, True))

# Model steps the linearizability checker may take: per round or program (a few hundred
# calls at most), and for a recorded history (`poolcheck linearize`, about 20 s at most).
LINEARIZE_BUDGET = 200_000
HISTORY_BUDGET = 5_000_000

# How late is late.
EARLY_SLACK = 0.001  # clocks round: EmptyPoolError this close to its timeout is on time
LATE_SLACK = 1.0  # ... and this long after it is late, even on a loaded machine
GRACE = 0.5  # a connection idle (or a slot free) this long, while a caller waits, is lost
CALL_LIMIT = 2.0  # one call on fake connections, one caller at a time: longer is a hang
ROUND_STALL = 3.0  # a stress round with no event for this long, threads still running
PROGRAM_LIMIT = 3.0  # one run of a parallel program
