"""Greedy shrinking, the one loop behind every "smallest failing ..." in a report.

Hypothesis shrinks what it draws, but it gives up on a candidate whose race does not recur
at once. The strategies then shrink further by hand: a stress round to fewer threads and
operations, a parallel program to fewer operations and branches, a controlled run to
fewer preemptions. Each supplies what "one step simpler" means and how to test a
candidate (as often as a race needs); this loop keeps the first candidate that still
fails, and starts again from it, until none does or the budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")  # what is being shrunk: a round, a program, a run
C = TypeVar("C")  # one candidate, before it is tried


def shrink_greedily(start: T, simpler: Callable[[T], Iterable[C]],
                    fails: Callable[[C], T | None], deadline: float,
                    attempts: int | None = None) -> T:
    """The smallest failing value found from ``start``: ``simpler(current)`` lists the
    candidates one step simpler, ``fails(candidate)`` tries one and returns what failed
    (the value to go on from) or None. Stops at ``deadline`` (``time.monotonic()``) or
    after ``attempts`` tries."""
    current = start
    tried = 0
    while time.monotonic() < deadline:
        for candidate in simpler(current):
            if time.monotonic() >= deadline or (attempts is not None and tried >= attempts):
                return current
            tried += 1
            failed = fails(candidate)
            if failed is not None:
                current = failed
                break
        else:
            return current
    return current
