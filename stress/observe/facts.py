"""The facts of a stress round (what decided it, what was recorded, what the probes saw)
and of a sequential program's steps.

The engine (``poolcheck.run.engine``) and the sequential machine fill these in; the judges
read them. Facts only: every conclusion is a judge's.
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


STEP_OPS = frozenset({"construct", "get", "put", "discard", "close", "arm", "state", "final"})


@dataclass(frozen=True)
class Step:
    """What one step observed. ``op``: a call (construct, get, put, discard, close), the
    factory armed to fail (arm), the state between steps (state), or the end (final)."""

    op: str
    label: str = ""  # the step as a report prints it, with what it gave
    conn: int | None = None  # get: handed out; put, discard: given back
    outcome: str = "ok"  # ok | a name the contract allows | "" (it may not raise that)
    raised: str = ""  # "Type: message" of what was raised, if anything
    not_implemented: bool = False  # what was raised is a NotImplementedError
    foreign: str = ""  # get: the repr of an object the factory did not make
    swallowed: str = ""  # ... and the class the factory raised in that call
    was_closed: bool = False  # get: the connection was closed when handed out
    kept: bool = False  # put: still open when put_conn returned
    timeout: float | None = None  # get: the timeout in force (None: none)
    elapsed: float = 0.0  # get: seconds until it raised
    open_after: tuple[int, ...] | None = None  # connections open after it, oldest first
    arm: str = ""  # arm: the class the factory will raise (ConnectFailed or Interrupted)
