"""What a correct pool may do, one call at a time.

A connection is named by an integer id. The state records which ids are idle in the pool,
which are checked out, and every id ever handed out (a ``get`` that returns an unseen id
created a connection). Which idle connection a ``get`` returns is free, so the model
answers "is this outcome allowed?" rather than computing the one right answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from poolcheck.model.invariants import Invariant

OK = "ok"
EMPTY = "EmptyPoolError"
CLOSED = "ClosedPoolError"

Op = Literal["get", "put", "discard", "close", "evict"]


@dataclass(frozen=True)
class State:
    maxsize: int
    block: bool
    closed: bool = False
    idle: frozenset[int] = frozenset()
    out: frozenset[int] = frozenset()
    seen: frozenset[int] = frozenset()

    @property
    def live(self) -> int:
        """Connections that exist: created and not yet closed."""
        return len(self.idle) + len(self.out)

    @property
    def may_create(self) -> bool:
        return not self.closed and (not self.block or self.live < self.maxsize)


@dataclass(frozen=True)
class Call:
    """One completed call and what it returned.

    ``get``: ``outcome`` is OK (``conn`` set), EMPTY, CLOSED, or the class name of what the
    factory raised. ``put``: ``kept`` says whether the pool kept ``conn`` or closed it.
    ``discard``: the caller closed ``conn`` itself and called ``put_conn(None)``.
    ``evict``: the pool closed ``conn`` on its own while nobody held it (a background
    reaper, a health check): an idle connection may go at any time.
    """

    op: Op
    conn: int | None = None
    outcome: str = OK
    kept: bool = False


@dataclass(frozen=True)
class Rejected:
    """An outcome the contract forbids, with the invariant it breaks and why."""

    invariant: Invariant
    reason: str

    def __bool__(self) -> bool:  # a rejection is falsy, so `if step(...)` reads naturally
        return False


def initial(maxsize: int, block: bool) -> State:
    return State(maxsize=maxsize, block=block)


def allowed_get_outcomes(state: State) -> set[str]:
    """Outcomes a ``get`` may have now; "new" stands for a newly created connection."""
    if state.closed:
        return {CLOSED}
    allowed = {f"reuse:{c}" for c in state.idle}
    if state.may_create:
        allowed.add("new")
    elif not state.idle:
        allowed.add(EMPTY)
    return allowed


def step(state: State, call: Call) -> State | Rejected:
    """The state after ``call``, or why the contract forbids its outcome."""
    if call.op == "get":
        return _get(state, call)
    if call.op == "close":
        return replace(state, closed=True, idle=frozenset())
    if call.op == "evict":
        return _evict(state, call.conn)
    conn = call.conn
    if conn is None or conn not in state.out:
        return Rejected(Invariant.EXCLUSIVE,
                        f"connection {conn} was returned but is not checked out")
    out = state.out - {conn}
    if call.op == "discard" or not call.kept:
        return replace(state, out=out)
    if state.closed:
        return Rejected(Invariant.CLOSED, f"the closed pool kept returned connection {conn} open")
    if len(state.idle) >= state.maxsize:
        return Rejected(Invariant.BOUND,
            f"the pool kept connection {conn} although {len(state.idle)} idle "
            f"connection(s) filled it (maxsize {state.maxsize})",
        )
    return replace(state, out=out, idle=state.idle | {conn})


def forget(state: State, conn: int) -> State:
    """The state without ``conn`` among the ids ever seen, if it is closed.

    Only a ``get`` that returns ``conn`` reads whether it was seen, so a checker that knows
    no later call names ``conn`` may forget it: no verdict changes, and states that the
    future cannot tell apart become equal (and stay small over long histories).
    """
    if conn in state.idle or conn in state.out or conn not in state.seen:
        return state
    return replace(state, seen=state.seen - {conn})


def _get(state: State, call: Call) -> State | Rejected:
    if call.outcome == CLOSED:
        if state.closed:
            return state
        return Rejected(Invariant.ERRORS, "get_conn raised ClosedPoolError but the pool is open")
    if state.closed:
        return Rejected(Invariant.CLOSED, f"get_conn on a closed pool gave {_describe(call)}")
    if call.outcome == EMPTY:
        if not state.block:
            return Rejected(Invariant.ERRORS, "get_conn raised EmptyPoolError in non-blocking mode")
        if state.idle or state.live < state.maxsize:
            return Rejected(Invariant.CAPACITY,
                f"get_conn raised EmptyPoolError with {len(state.idle)} idle and "
                f"{state.live} of {state.maxsize} connections in existence",
            )
        return state
    if call.outcome != OK:  # the factory raised: allowed only where creating was
        if not state.may_create:
            return Rejected(Invariant.BOUND,
                f"the pool called its factory with {state.live} of {state.maxsize} "
                "connections already in existence",
            )
        return state
    conn = call.conn
    assert conn is not None, "a successful get names its connection"
    if conn in state.idle:
        return replace(state, idle=state.idle - {conn}, out=state.out | {conn})
    if conn in state.out:
        return Rejected(Invariant.EXCLUSIVE,
                        f"connection {conn} was handed out while already checked out")
    if conn in state.seen:
        return Rejected(Invariant.CLOSED, f"connection {conn} was handed out after it was closed")
    if not state.may_create:
        return Rejected(Invariant.BOUND,
            f"the pool created connection {conn} with {state.live} of {state.maxsize} "
            "connections already in existence",
        )
    return replace(state, out=state.out | {conn}, seen=state.seen | {conn})


def _evict(state: State, conn: int | None) -> State | Rejected:
    """An idle connection the pool closed leaves it; one never handed out was the pool's own
    (made eagerly, never seen); a checked-out one must not be closed by the pool."""
    if conn in state.out:
        return Rejected(Invariant.EXCLUSIVE,
                        f"the pool closed connection {conn} while it was checked out")
    if conn in state.idle:
        return replace(state, idle=state.idle - {conn})
    return state


def _describe(call: Call) -> str:
    return f"connection {call.conn}" if call.outcome == OK else call.outcome
