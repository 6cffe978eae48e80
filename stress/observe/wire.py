"""Facts as JSON, and back, checked: how they cross from the pool's process to the grader.

The process that runs an untrusted pool only records; the grader judges. So every fact a
judge reads travels as plain JSON: a stress round's (``RoundResult``: the round's spec, the
log, what the probes saw) and a sequential program's (its ``Step``s). The readers refuse
anything not in the shape the writers write (``BadFacts`` says what). Each pair must stay
pure and exact inverses: the grader's judges must reach the same conclusions as if they
had run beside the pool.
"""

from __future__ import annotations

from typing import Any

from poolcheck.causes import Cause
from poolcheck.model import Invariant
from poolcheck.observe.facts import STEP_OPS, RoundResult, RoundSpec, Stall, Step
from poolcheck.observe.observations import LIMIT, OPS, BadFacts, as_bool, as_int, as_time, optional
from poolcheck.observe.recording import CallRecord, Log

TEXT_LIMIT = 64 * 1024  # characters of one message or traceback in the facts
FIELDS = frozenset({"spec", "log", "last_ops", "stall", "probe_empty", "capacity_intact",
                    "left_open", "closed_get", "has_close", "construct_error"})


def facts_json(r: RoundResult) -> dict[str, Any]:
    s, log = r.spec, r.log
    return {
        "spec": [s.seed, s.threads, s.ops, s.maxsize, s.block, s.closer, s.storm],
        "log": {"created": [[k, v] for k, v in log.created.items()],
                "closed": [[k, v] for k, v in log.closed.items()],
                "closed_by_caller": sorted(log.closed_by_caller),
                "close_calls": [[k, v] for k, v in log.close_calls.items()],
                "close_times": [[k, [[t, by] for t, by in v]]
                                for k, v in log.close_times.items()],
                "calls": [[c.thread, c.op, c.conn, c.timeout, c.call, c.ret, c.outcome,
                           c.kept, c.error, c.connected] for c in log.calls],
                "last_event": log.last_event},
        "last_ops": [[k, v] for k, v in r.last_ops.items()],
        "stall": None if r.stall is None else [
            r.stall.invariant.value, r.stall.message,
            None if r.stall.cause is None else r.stall.cause.value],
        "probe_empty": r.probe_empty, "capacity_intact": r.capacity_intact,
        "left_open": r.left_open, "closed_get": r.closed_get, "has_close": r.has_close,
        "construct_error": r.construct_error,
    }


def facts_from_json(doc: object) -> RoundResult:
    """The round ``doc`` describes; BadFacts if anything is off."""
    if not isinstance(doc, dict) or set(doc) != FIELDS:
        raise BadFacts("a round that is not an object with the round's fields")
    spec = _list(doc["spec"], "the spec", 7)
    round_spec = RoundSpec(as_int(spec[0]), as_int(spec[1]), as_int(spec[2]), as_int(spec[3]),
                           as_bool(spec[4]), as_bool(spec[5]), as_bool(spec[6]))
    stall = None
    if doc["stall"] is not None:
        inv, message, cause = _list(doc["stall"], "a stall", 3)
        stall = Stall(_enum(Invariant, inv), _text(message),
                      None if cause is None else _enum(Cause, cause))
    return RoundResult(
        round_spec, _log(doc["log"]),
        {as_int(k): [_text(op) for op in _list(v, "operations")]
         for k, v in _pairs(doc["last_ops"])},
        stall, optional(_text, doc["probe_empty"]), as_bool(doc["capacity_intact"]),
        [as_int(x) for x in _list(doc["left_open"], "left_open")],
        optional(_text, doc["closed_get"]), as_bool(doc["has_close"]),
        optional(_text, doc["construct_error"]))


def _log(value: object) -> Log:
    keys = {"created", "closed", "closed_by_caller", "close_calls", "close_times", "calls",
            "last_event"}
    if not isinstance(value, dict) or set(value) != keys:
        raise BadFacts("a log that is not an object with the log's fields")
    return Log(
        created={as_int(k): as_time(v) for k, v in _pairs(value["created"])},
        closed={as_int(k): as_time(v) for k, v in _pairs(value["closed"])},
        closed_by_caller={as_int(x) for x in _list(value["closed_by_caller"], "closed_by_caller")},
        close_calls={as_int(k): as_int(v) for k, v in _pairs(value["close_calls"])},
        close_times={as_int(k): [_close(x) for x in _list(v, "close times")]
                     for k, v in _pairs(value["close_times"])},
        calls=[_call(c) for c in _list(value["calls"], "calls")],
        last_event=as_time(value["last_event"]))


def _close(value: object) -> tuple[float, bool]:
    at, by = _list(value, "a close", 2)
    return as_time(at), as_bool(by)


def _call(value: object) -> CallRecord:
    thread, op, conn, timeout, call, ret, outcome, kept, error, connected = _list(
        value, "a call", 10)
    if op not in OPS:
        raise BadFacts(f"unknown operation {op!r}")
    return CallRecord(as_int(thread), op, optional(as_int, conn), optional(as_time, timeout),
                      as_time(call), optional(as_time, ret), _text(outcome),
                      optional(as_bool, kept), optional(_text, error), as_bool(connected))


def _list(value: object, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list) or len(value) > LIMIT or (
            length is not None and len(value) != length):
        raise BadFacts(f"{what}: not a list{'' if length is None else f' of {length}'}")
    return value


def _pairs(value: object) -> list[tuple[object, object]]:
    pairs = []
    for item in _list(value, "a mapping"):
        key, val = _list(item, "a [key, value] pair", 2)
        pairs.append((key, val))
    return pairs


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > TEXT_LIMIT:
        raise BadFacts("a message that is not text (of sensible size)")
    return value


def _enum(kind: Any, value: object) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise BadFacts(f"{value!r} is not a known {kind.__name__}") from None


def steps_json(steps: list[Step]) -> list[list[Any]]:
    return [[s.op, s.label, s.conn, s.outcome, s.raised, s.not_implemented, s.foreign,
             s.swallowed, s.was_closed, s.kept, s.timeout, s.elapsed,
             None if s.open_after is None else list(s.open_after), s.arm] for s in steps]


def steps_from_json(doc: object) -> list[Step]:
    """The steps ``doc`` describes; BadFacts if anything is off."""
    steps = []
    for item in _list(doc, "steps"):
        (op, label, conn, outcome, raised, not_implemented, foreign, swallowed, was_closed,
         kept, timeout, elapsed, open_after, arm) = _list(item, "a step", 14)
        if op not in STEP_OPS:
            raise BadFacts(f"unknown step {op!r}")
        steps.append(Step(op, _text(label), optional(as_int, conn), _text(outcome),
                          _text(raised), as_bool(not_implemented), _text(foreign),
                          _text(swallowed), as_bool(was_closed), as_bool(kept),
                          optional(as_time, timeout), as_time(elapsed),
                          None if open_after is None else tuple(
                              as_int(i) for i in _list(open_after, "open connections")),
                          _text(arm)))
    return steps
