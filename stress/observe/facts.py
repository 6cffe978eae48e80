"""The facts of one stress round: what decided it, what was recorded, what the probes saw.

The engine (``poolcheck.run.engine``) fills these in; the judges read them. Facts only:
every conclusion is a judge's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from poolcheck.causes import Cause
from poolcheck.model import Invariant
from poolcheck.observe.recording import Log


@dataclass(frozen=True)
class RoundSpec:
    """Everything that decides a round, apart from the interleaving."""

    seed: int
    threads: int
    ops: int
    maxsize: int
    block: bool
    closer: bool  # does one thread close the pool while the others still run?
    storm: bool = False  # run the storm probe (one round per stress run: see stress_run)

    @classmethod
    def draw(cls, seed: int, threads: int, ops: int, maxsize: int | None = None,
             block: bool | None = None) -> RoundSpec:
        rng = random.Random(seed)
        return cls(
            seed=seed, threads=threads, ops=ops,
            maxsize=maxsize if maxsize is not None else rng.choice(
                [1, 2, 3, max(1, threads // 2)]),
            block=block if block is not None else rng.random() < 0.6,
            closer=rng.random() < 0.25,
        )

    def describe(self) -> str:
        return (f"{self.threads} threads x {self.ops} operations, maxsize={self.maxsize}, "
                f"block={self.block}{', one thread closes the pool' if self.closer else ''}")


@dataclass
class Stall:
    """The run stopped making progress."""

    invariant: Invariant  # deadlock-free, wakeup, capacity or closed
    message: str
    cause: Cause | None = None


@dataclass
class RoundResult:
    spec: RoundSpec
    log: Log
    last_ops: dict[int, list[str]]
    stall: Stall | None = None
    probe_empty: str | None = None  # capacity probe refused although every slot was free
    capacity_intact: bool = False  # the capacity probe ran and got maxsize connections
    left_open: list[int] = field(default_factory=list)  # after close() and every return
    closed_get: str | None = None  # what get_conn did on the closed pool, if wrong
    has_close: bool = True
    construct_error: str | None = None
