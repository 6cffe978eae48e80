"""The greedy shrinker every strategy shares, on plain data (no threads, no pools)."""

from __future__ import annotations

import time

from poolcheck.run.shrink import shrink_greedily

FAR = float("inf")


def _drop_one(xs: tuple[int, ...]) -> list[tuple[int, ...]]:
    return [xs[:i] + xs[i + 1:] for i in range(len(xs))]


def test_shrinks_to_the_smallest_failing_value() -> None:
    # "fails" while it still holds both 3 and 7: the smallest such tuple is (3, 7)
    def fails(xs: tuple[int, ...]) -> tuple[int, ...] | None:
        return xs if 3 in xs and 7 in xs else None

    start: tuple[int, ...] = (1, 3, 5, 7, 9)
    assert shrink_greedily(start, _drop_one, fails, FAR) == (3, 7)


def test_keeps_what_the_test_returns() -> None:
    # the value tried is not the value kept: a candidate "fails" as a reseeded variant
    def simpler(n: int) -> list[int]:
        return [n // 2] if n > 1 else []

    kept = shrink_greedily(40, simpler, lambda n: n + 1 if n >= 5 else None, FAR)
    assert kept == 6  # 40 -> 20 tried -> 21 kept -> 10 -> 11 -> 5 -> 6 -> 3 fails no more


def test_stops_at_its_budget() -> None:
    tried: list[tuple[int, ...]] = []

    def fails(xs: tuple[int, ...]) -> tuple[int, ...] | None:
        tried.append(xs)
        return None

    start: tuple[int, ...] = tuple(range(10))
    assert shrink_greedily(start, _drop_one, fails, FAR, attempts=3) == start
    assert len(tried) == 3
    assert shrink_greedily(start, _drop_one, fails, time.monotonic() - 1) == start
    assert len(tried) == 3  # past the deadline, nothing is tried
