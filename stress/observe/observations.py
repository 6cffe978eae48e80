"""A round as plain facts: the public API that user invariants read.

``Run`` is what ``@poolcheck.invariant`` functions receive: every connection the pool made
(when, and each close with who held it then) and every call (who, what, when it began and
returned, what came of it), with the pool's configuration. It holds data only, so it
crosses from the pool's process to the grader's as JSON and is checked on the way in;
user invariants run in the grader's process, never beside the pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from poolcheck.observe.facts import RoundResult

OPS = frozenset({"get", "put", "discard", "close", "use"})
LIMIT = 200_000  # calls or connections in one round: far above what a round makes


@dataclass(frozen=True)
class Close:
    at: float  # time.monotonic() of the close() call
    by_caller: bool  # the caller closed it (found broken), not the pool
    holder: int | None  # the thread holding it then (get_conn returned, put_conn not called)


@dataclass(frozen=True)
class Connection:
    id: int
    made: float  # when the factory made it
    closes: tuple[Close, ...]  # every close() call on it, in order


@dataclass(frozen=True)
class Call:
    thread: int  # -1: the checker's own probes after the threads are done
    op: str  # get | put | discard (put_conn(None) after closing it) | close | use
    conn: int | None  # what get_conn returned, or what was given back
    outcome: str  # ok | EmptyPoolError | ClosedPoolError | the class of what was raised
    call: float
    ret: float | None  # None: it never returned
    timeout: float | None = None  # get_conn's timeout argument
    kept: bool | None = None  # put: the connection was still open when put_conn returned


@dataclass(frozen=True)
class Run:
    """One stress round: the pool's configuration and every fact recorded."""

    seed: int  # the round's seed: `poolcheck stress TARGET --seed N` runs it first
    threads: int
    maxsize: int
    block: bool
    connections: tuple[Connection, ...]
    calls: tuple[Call, ...]


def run_of(result: RoundResult) -> Run:
    """The public facts of a round the engine recorded."""
    log = result.log
    calls = tuple(Call(c.thread, c.op, c.conn, c.outcome, c.call, c.ret, c.timeout, c.kept)
                  for c in log.calls)
    connections = tuple(
        Connection(ident, made, tuple(Close(at, by, _holder(calls, ident, at))
                                      for at, by in log.close_times.get(ident, [])))
        for ident, made in sorted(log.created.items()))
    spec = result.spec
    return Run(spec.seed, spec.threads, spec.maxsize, spec.block, connections, calls)


def _holder(calls: tuple[Call, ...], conn: int, at: float) -> int | None:
    for g in calls:
        if g.op == "get" and g.conn == conn and g.outcome == "ok" and g.ret is not None \
                and g.ret <= at:
            back = [c.call for c in calls if c.thread == g.thread and c.conn == conn
                    and c.op in ("put", "discard") and c.call >= g.ret]
            if not back or min(back) > at:
                return g.thread
    return None


# -- as JSON, and back (checked: it comes from the pool's process) --------------------------


def run_json(run: Run) -> dict[str, Any]:
    return {"seed": run.seed, "threads": run.threads, "maxsize": run.maxsize,
            "block": run.block,
            "connections": [[c.id, c.made, [[x.at, x.by_caller, x.holder] for x in c.closes]]
                            for c in run.connections],
            "calls": [[c.thread, c.op, c.conn, c.outcome, c.call, c.ret, c.timeout, c.kept]
                      for c in run.calls]}


class BadFacts(ValueError):
    """Facts that are not in the shape ``run_json`` writes."""


def run_from_json(doc: object) -> Run:
    """The ``Run`` that ``doc`` describes; BadFacts if anything is off."""
    if not isinstance(doc, dict) or set(doc) != {"seed", "threads", "maxsize", "block",
                                                 "connections", "calls"}:
        raise BadFacts("a round that is not an object with the round's fields")
    conns, calls = doc["connections"], doc["calls"]
    if not isinstance(conns, list) or not isinstance(calls, list) or max(
            len(conns), len(calls)) > LIMIT:
        raise BadFacts("a round's connections and calls must be lists (of sensible size)")
    return Run(as_int(doc["seed"]), as_int(doc["threads"]), as_int(doc["maxsize"]),
               as_bool(doc["block"]), tuple(_connection(c) for c in conns),
               tuple(_call(c) for c in calls))


def _connection(item: object) -> Connection:
    if not isinstance(item, list) or len(item) != 3 or not isinstance(item[2], list):
        raise BadFacts("a connection is [id, made, closes]")
    closes = []
    for x in item[2]:
        if not isinstance(x, list) or len(x) != 3:
            raise BadFacts("a close is [at, by_caller, holder]")
        closes.append(Close(as_time(x[0]), as_bool(x[1]), optional(as_int, x[2])))
    return Connection(as_int(item[0]), as_time(item[1]), tuple(closes))


def _call(item: object) -> Call:
    if not isinstance(item, list) or len(item) != 8:
        raise BadFacts("a call is [thread, op, conn, outcome, call, return, timeout, kept]")
    thread, op, conn, outcome, call, ret, timeout, kept = item
    if op not in OPS:
        raise BadFacts(f"unknown operation {op!r}")
    if not isinstance(outcome, str) or len(outcome) > 200:
        raise BadFacts("an outcome is a class name")
    return Call(as_int(thread), op, optional(as_int, conn), outcome, as_time(call),
                optional(as_time, ret), optional(as_time, timeout), optional(as_bool, kept))


def as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**63:
        raise BadFacts(f"{value!r} is not an integer")
    return value


def as_time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise BadFacts(f"{value!r} is not a time")
    return float(value)


def as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadFacts(f"{value!r} is not true or false")
    return value


def optional(parse: Any, value: object) -> Any:
    return None if value is None else parse(value)
