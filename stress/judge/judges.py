"""One pure function per invariant: a round's observations in, violations out.

Each judge reads only stamped facts (see ``recording``) and draws only conclusions that
hold whatever happened between two stamps: that is how a measurement taken from other
threads avoids false alarms. docs/INVARIANTS.md explains each one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeAlias

from poolcheck.causes import Cause
from poolcheck.errors import HistoryError
from poolcheck.judge import linearize
from poolcheck.judge.linearize_report import format_report
from poolcheck.model import Invariant
from poolcheck.observe.facts import RoundResult
from poolcheck.observe.history import EVICTIONS, Event, History
from poolcheck.observe.history import Pool as HistoryPool
from poolcheck.observe.recording import WAIT_INTERRUPTED, CallRecord, Log
from poolcheck.settings import EARLY_SLACK, GRACE, LATE_SLACK, LINEARIZE_BUDGET

NEVER = float("inf")


@dataclass(frozen=True)
class Finding:
    invariant: Invariant
    message: str
    evidence: Evidence | None = None  # the history behind a linearizability finding
    cause: Cause | None = None  # what the round showed beyond the invariant, if anything
    underlying: Invariant | None = None  # interrupt-safe: what the interrupted run broke


Evidence = tuple[History, linearize.Result]


Judge: TypeAlias = Callable[[RoundResult], list[Finding]]


def who(thread: int) -> str:
    """A caller's name in a finding: the engine's probes run as thread -1."""
    return "the checker's probe" if thread < 0 else f"thread {thread}"


def _ops(log: Log, *ops: str) -> list[CallRecord]:
    return [c for c in log.calls if c.op in ops]


def _closed_while_held(log: Log) -> list[Finding]:
    """Connections the pool closed while a caller held them, from get_conn's return to the
    call that gave it back: a connection is closed when it is returned, never before
    (CONTRACT section 2). After close() was called that breaks `closed`; before, the pool
    used a connection a caller holds, which breaks `exclusive`."""
    first_close = min((c.call for c in _ops(log, "close")), default=NEVER)
    returns = _ops(log, "put", "discard")
    found = []
    for g in _ops(log, "get"):
        conn, got = g.conn, g.ret
        if g.outcome != "ok" or conn is None or got is None or conn in log.closed_by_caller:
            continue
        closed_at = log.closed.get(conn)
        if closed_at is None or closed_at <= got:
            continue
        back = min((c.call for c in returns  # by any thread: a program may pass it on
                    if c.conn == conn and c.call >= got), default=NEVER)
        if closed_at >= back:
            continue
        if closed_at > first_close:
            found.append(Finding(Invariant.CLOSED, f"the pool closed connection #{conn} while "
                                 f"{who(g.thread)} still held it (after close() was called): "
                                 "a checked-out connection is closed when it is returned",
                                 cause=Cause.CLOSED_WHILE_HELD))
        else:
            found.append(Finding(Invariant.EXCLUSIVE, f"the pool closed connection #{conn} while "
                                 f"{who(g.thread)} still held it", cause=Cause.CLOSED_WHILE_HELD))
    return found


def judge_errors(r: RoundResult) -> list[Finding]:
    found = [Finding(Invariant.ERRORS, c.error, cause=Cause.NOT_IMPLEMENTED
                     if c.outcome == NotImplementedError.__name__ else None)
             for c in r.log.calls if c.error and c.op != "use"]
    if r.construct_error:
        found.append(Finding(Invariant.ERRORS, r.construct_error))
    first_close = min((c.call for c in _ops(r.log, "close")), default=NEVER)
    for c in _ops(r.log, "get"):
        if c.outcome == "ClosedPoolError" and c.ret is not None and c.ret < first_close:
            found.append(Finding(Invariant.ERRORS, f"{who(c.thread)}'s get_conn raised "
                                 "ClosedPoolError before any close() began"))
        if c.outcome == "EmptyPoolError" and not r.spec.block:
            found.append(Finding(Invariant.ERRORS, f"{who(c.thread)}'s get_conn raised "
                                 "EmptyPoolError in non-blocking mode"))
    return found[:1]


def judge_exclusive(r: RoundResult) -> list[Finding]:
    """A connection's holder keeps it from get_conn's return to put_conn's call."""
    found = [Finding(Invariant.EXCLUSIVE,
                     c.error) for c in r.log.calls if c.error and c.op == "use"]
    holder: dict[int, CallRecord] = {}
    for c in sorted((c for c in r.log.calls if c.conn is not None),
                    key=lambda c: c.ret if c.op == "get" and c.ret is not None else c.call):
        conn = c.conn
        assert conn is not None
        if c.op == "get" and c.outcome == "ok":
            other = holder.get(conn)
            if other is not None:
                found.append(Finding(Invariant.EXCLUSIVE, (
                    f"{who(c.thread)} got connection #{conn} while "
                    f"{who(other.thread)} still held it")))
            holder[conn] = c
        elif c.op in ("put", "discard"):
            holder.pop(conn, None)
    found += [f for f in _closed_while_held(r.log) if f.invariant == Invariant.EXCLUSIVE]
    return found[:1]


def idle_spans(log: Log) -> list[tuple[float, float, int]]:
    """When each connection was certainly idle in the pool: (from, to, connection).

    From the return of a put_conn that left it open, to its closing or the *call* of
    the get_conn that next handed it out: whatever happened between two stamps, nothing
    can have taken it in that span. A get_conn that failed may also have taken it: a
    library whose request fails after it took an idle connection (urllib3's ``urlopen``,
    when sending on it fails) closes that connection before the error comes out. So when
    the pool (not a caller) closed it during a get_conn that failed with anything but
    ``EmptyPoolError``/``ClosedPoolError``, it was certainly idle only until that call (or
    the put's return, if later).
    """
    spans = []
    gets = [c for c in log.calls if c.op == "get" and c.outcome == "ok" and c.ret is not None]
    failed = [c for c in log.calls if c.op == "get" and c.ret is not None
              and c.outcome not in ("ok", "pending", "EmptyPoolError", "ClosedPoolError")]
    for put in log.calls:
        if put.op != "put" or not put.kept or put.ret is None or put.conn is None:
            continue
        taken = [g.call for g in gets
                 if g.conn == put.conn and g.ret is not None and g.ret > put.call]
        closed = log.closed.get(put.conn, NEVER)
        if put.conn not in log.closed_by_caller:
            taken += [max(g.call, put.ret) for g in failed
                      if g.ret is not None and g.call <= closed <= g.ret]
        end = min([closed, *taken])
        if end > put.ret:
            spans.append((put.ret, end, put.conn))
    return spans


def judge_bound(r: RoundResult) -> list[Finding]:
    if r.spec.block:  # at each creation, count what was created and not yet closed
        for ident, born in sorted(r.log.created.items(), key=lambda kv: kv[1]):
            alive = [i for i, t in r.log.created.items()
                     if t <= born and r.log.closed.get(i, NEVER) > born]
            if len(alive) > r.spec.maxsize:
                return [Finding(Invariant.BOUND, (
                    f"when connection #{ident} was made, {len(alive)} connections were open "
                    f"(maxsize={r.spec.maxsize}, block=True)"))]
        return []
    spans = idle_spans(r.log)
    for start, _, _ in spans:
        idle = sorted(c for a, b, c in spans if a <= start < b)
        if len(idle) > r.spec.maxsize:
            return [Finding(Invariant.BOUND, (
                f"{len(idle)} connections were idle in the pool at once "
                f"({', '.join(f'#{i}' for i in idle)}; maxsize={r.spec.maxsize})"))]
    return []


def late_by(timeout: float) -> float:
    """How long past its timeout a get_conn may still be waiting before it is late.

    One rule for the engine (a thread still waiting) and the judges (an EmptyPoolError that
    came): proportional for long timeouts, never below LATE_SLACK.
    """
    return max(LATE_SLACK, timeout)


def timing_fault(timeout: float | None, took: float) -> Finding | None:
    """What is wrong with an EmptyPoolError that came after ``took`` s, if anything.

    Shared by the sequential machine and the stress judge: one rule, one slack.
    """
    wanted = timeout or 0.0
    if took < wanted - EARLY_SLACK:
        return Finding(Invariant.TIMEOUT, f"EmptyPoolError after {took:.4f} s, before the "
                       f"{wanted} s timeout", cause=Cause.EMPTY_TOO_EARLY)
    if took > wanted + late_by(wanted):
        return Finding(Invariant.TIMEOUT, f"EmptyPoolError after {took:.2f} s, long after "
                       f"the {wanted} s timeout")
    return None


def judge_timeout(r: RoundResult) -> list[Finding]:
    if not r.spec.block:  # block=False never waits: any EmptyPoolError is for `errors`
        return []
    for c in _ops(r.log, "get"):
        if c.outcome == "EmptyPoolError" and c.ret is not None:
            fault = timing_fault(c.timeout, c.ret - c.call)
            if fault:
                return [replace(fault, message=f"{who(c.thread)}: {fault.message}")]
    return []


def free_slots(log: Log, maxsize: int, t: float, waiter: CallRecord) -> int:
    """Slots certainly free at t, as the waiter sees them (never more than there were).

    A connection occupies its slot from its making until the pool closes it, or, if the
    caller closed it, until that caller's put_conn(None) returned; every other get_conn
    under way may be about to take a slot, so it counts as taking one.
    """
    released = {c.conn: c.ret for c in log.calls
                if c.op == "discard" and c.ret is not None and c.conn is not None}
    occupied = 0
    for ident, born in log.created.items():
        if born > t:
            continue
        end = released.get(ident) if ident in log.closed_by_caller else log.closed.get(ident)
        if end is None or end > t:
            occupied += 1
    busy = sum(1 for c in log.calls if c.op == "get" and c is not waiter and c.call <= t
               and (c.ret is None or c.ret > t))
    return maxsize - occupied - busy


def judge_wakeup(r: RoundResult) -> list[Finding]:
    """A waiting get_conn not served although a connection or a slot was free for GRACE s.

    Served late counts as well as not served: a pool that rechecks only when its timeout
    runs out returns a connection then, a second after it could have.
    """
    if not r.spec.block:
        return []
    first_close = min((c.call for c in _ops(r.log, "close")), default=NEVER)
    waiters = [w for w in _ops(r.log, "get") if w.outcome in ("ok", "EmptyPoolError")
               and w.ret is not None and w.ret - w.call >= GRACE and w.ret < first_close]
    if not waiters:
        return []
    spans = idle_spans(r.log)
    puts = [p for p in _ops(r.log, "put") if p.kept and p.ret is not None]
    stamps = sorted({c.call for c in r.log.calls} | {c.ret for c in r.log.calls if c.ret}
                    | set(r.log.created.values()) | set(r.log.closed.values()))
    for w in waiters:
        assert w.ret is not None
        late = _idle_while_waiting(w, spans, puts)
        if late is None and r.capacity_intact:  # from outside, a lost slot looks free
            late = _slot_free_while_waiting(w, r.log, r.spec.maxsize, stamps)
        if late is not None:
            result = "EmptyPoolError" if w.outcome == "EmptyPoolError" else (
                f"connection #{w.conn} only then")
            return [Finding(Invariant.WAKEUP, f"{who(w.thread)} waited {w.ret - w.call:.2f} s in "
                            f"get_conn and got {result}, although {late}")]
    return []


def _idle_while_waiting(w: CallRecord, spans: list[tuple[float, float, int]],
                        puts: list[CallRecord]) -> str | None:
    assert w.ret is not None
    if w.outcome == "ok":  # the connection it got: back in the pool long before it got it
        back = [p.ret for p in puts if p.conn == w.conn and p.ret is not None
                and p.ret <= w.ret]
        if back and w.ret - max(max(back), w.call) >= GRACE:
            return (f"#{w.conn} had been back in the pool for "
                    f"{w.ret - max(max(back), w.call):.2f} s of that wait")
        return None
    for a, b, conn in spans:
        overlap = min(b, w.ret) - max(a, w.call)
        if overlap >= GRACE:
            return f"connection #{conn} sat idle in the pool for {overlap:.2f} s of that wait"
    return None


def _slot_free_while_waiting(w: CallRecord, log: Log, maxsize: int,
                             stamps: list[float]) -> str | None:
    assert w.ret is not None
    run_from: float | None = None  # since when a slot has been free
    for t in [*(t for t in stamps if w.call <= t < w.ret), w.ret]:
        if run_from is not None and t - run_from >= GRACE:  # free until at least t
            return f"a slot was free for {t - run_from:.2f} s of that wait"
        free = t < w.ret and free_slots(log, maxsize, t, w) > 0
        run_from = (run_from if run_from is not None else t) if free else None
    return None


def judge_capacity(r: RoundResult) -> list[Finding]:
    return [Finding(Invariant.CAPACITY, r.probe_empty)] if r.probe_empty else []


def judge_closed(r: RoundResult) -> list[Finding]:
    found = [Finding(Invariant.CLOSED, r.closed_get)] if r.closed_get else []
    closed_at = min((c.ret for c in _ops(r.log, "close") if c.ret is not None), default=NEVER)
    for c in r.log.calls:
        if c.call <= closed_at or c.ret is None:
            continue
        if c.op == "get" and c.outcome == "ok":
            found.append(Finding(Invariant.CLOSED, f"{who(c.thread)}'s get_conn, called after "
                                 f"close() returned, gave connection #{c.conn}"))
        if c.op == "put" and c.kept:
            found.append(Finding(Invariant.CLOSED, f"{who(c.thread)} returned connection #{c.conn} "
                                 "after close(), and the pool kept it open"))
    for c in _ops(r.log, "get"):
        if c.conn is not None and c.ret is not None and r.log.closed.get(c.conn, NEVER) < c.ret:
            found.append(Finding(Invariant.CLOSED, f"{who(c.thread)}'s get_conn handed out "
                                 f"connection #{c.conn}, which had been closed"))
    closes = [c for c in _ops(r.log, "close") if c.ret is not None]
    for g in _ops(r.log, "get"):
        if g.ret is None or g.outcome not in ("EmptyPoolError", "ClosedPoolError"):
            continue
        ends = [c.ret for c in closes if g.call < c.call and c.ret is not None]
        if ends and min(ends) + GRACE < g.ret:
            found.append(Finding(Invariant.CLOSED, f"{who(g.thread)}'s get_conn was waiting when "
                                 f"close() was called, and raised {g.outcome} only "
                                 f"{g.ret - min(ends):.2f} s after close() returned "
                                 "(ClosedPoolError was due at once): close() did not wake "
                                 "it", cause=Cause.CLOSE_WOKE_NOBODY))
    found += [f for f in _closed_while_held(r.log) if f.invariant == Invariant.CLOSED]
    first_close = min((c.call for c in _ops(r.log, "close")), default=NEVER)
    for conn in r.left_open:
        puts = [c for c in _ops(r.log, "put") if c.conn == conn]
        if puts and puts[-1].call >= first_close:
            found.append(Finding(Invariant.CLOSED, f"connection #{conn}, returned by thread "
                                 f"{puts[-1].thread} after close() began, was kept open in "
                                 "the closed pool"))
    return found[:1]


def judge_no_leak(r: RoundResult) -> list[Finding]:
    if r.left_open:
        ids = ", ".join(f"#{i}" for i in r.left_open)
        return [Finding(Invariant.NO_LEAK, f"after close() and every return, connection(s) {ids} "
                        "are still open")]
    return []


def judge_stall(r: RoundResult) -> list[Finding]:
    return [Finding(r.stall.invariant, r.stall.message, cause=r.stall.cause)] if r.stall else []


def history_of(r: RoundResult) -> History | None:
    """The round as a contract history (section 5); None if a call broke the contract's
    vocabulary (a foreign object, an unexpected error: `errors` judges those)."""
    return history_of_log(r.log, r.spec.maxsize, r.spec.block)


def history_of_log(log: Log, maxsize: int, block: bool) -> History | None:
    events = list(_evictions(log))
    for c in log.calls:
        if c.op == "use" or (c.op == "get" and c.outcome == WAIT_INTERRUPTED
                             and not c.connected):
            continue  # interrupted while it waited, before it connected: no effect
        # (one interrupted after it called the factory held a slot for a while: as a get
        # whose factory raised, the slot taken and given back within its interval)
        if c.error is not None:
            return None
        events.append(Event(
            thread=c.thread, op="put" if c.op == "discard" else c.op,  # type: ignore[arg-type]
            call=c.call, ret=c.ret, outcome="pending" if c.ret is None else c.outcome,
            conn=c.conn if c.op != "get" or c.outcome == "ok" else None,
            kept=bool(c.kept) and c.ret is not None, discard=c.op == "discard"))
    return History(HistoryPool(maxsize, block), tuple(sorted(events, key=lambda e: e.call)))


def _evictions(log: Log) -> list[Event]:
    """Connections the pool closed itself, but for those a put_conn closed (kept=False):
    a reaper, a health check, or close() closing an idle one (``evict``: the model allows
    it for an idle connection, and it changes nothing after close() emptied the pool). The
    pool may have taken it out of its idle list any time after it became idle and closed
    it later, outside its lock, or while a close() waited for the lock: the event spans
    from the call of the put that made it idle (or its making) to the close."""
    found: list[Event] = []
    for conn, at in sorted(log.closed.items(), key=lambda kv: kv[1]):
        if conn in log.closed_by_caller:
            continue
        puts = [c for c in log.calls if c.op == "put" and c.conn == conn and c.call <= at]
        if any(not c.kept and at <= (NEVER if c.ret is None else c.ret) for c in puts):
            continue  # the put that gave it back closed it, and says so (kept=False)
        since = max((c.call for c in puts if c.kept), default=log.created.get(conn, at))
        found.append(Event(thread=EVICTIONS - len(found), op="evict", call=min(since, at),
                           ret=at, conn=conn))
    return found


def judge_linearizable(r: RoundResult) -> list[Finding]:
    """Some order of the calls, consistent with real time, that the model accepts."""
    history = history_of(r) if r.stall is None else None  # a stall is judged as such
    if history is None:
        return []
    try:
        result = linearize.check(history, LINEARIZE_BUDGET)
    except HistoryError:
        return []  # e.g. a probe that hung: not a history the contract can state
    if result.verdict != linearize.NOT_LINEARIZABLE:
        return []  # undecided is not a verdict
    return [Finding(Invariant.LINEARIZABLE, format_report(history, result), (history, result))]


JUDGES: list[Judge] = [judge_errors, judge_exclusive, judge_bound, judge_timeout,
                       judge_wakeup, judge_capacity, judge_closed, judge_no_leak, judge_stall,
                       judge_linearizable]


def judge(r: RoundResult) -> list[Finding]:
    return [f for j in JUDGES for f in j(r)]


# What a controlled run is judged on: the order of its events, never their times. Its stamps
# are logical (one tick per event, and a virtual clock that jumps), so the judges that read
# durations (timeout, wakeup, and the grace of a waiter that close() should have woken)
# would see scheduling where there is none; a lost wake-up shows there as an exact deadlock.
ORDER_JUDGES: list[Judge] = [judge_errors, judge_exclusive, judge_bound, judge_capacity,
                             judge_closed, judge_no_leak]
_TICK = 1e-9  # one logical tick, in the seconds the timing clauses read: far below GRACE


def judge_order(r: RoundResult) -> list[Finding]:
    """Every invariant a run's order of events can show, linearizability last.

    This function must be pure: the grader runs it again on the facts a pool's process
    sent."""
    log = copy.deepcopy(r.log)
    for c in log.calls:
        c.call *= _TICK
        c.ret = None if c.ret is None else c.ret * _TICK
    log.created = {k: v * _TICK for k, v in log.created.items()}
    log.closed = {k: v * _TICK for k, v in log.closed.items()}
    log.close_times = {k: [(t * _TICK, b) for t, b in v] for k, v in log.close_times.items()}
    timeless = replace(r, log=log)
    found = [f for j in ORDER_JUDGES for f in j(timeless)] + judge_linearizable(r)
    interrupted = interrupted_by(r.log)
    if found and interrupted:  # the run an interrupt took part in broke it: each finding
        return [replace(f, invariant=Invariant.INTERRUPT_SAFE, underlying=f.invariant,
                        message=f"after {interrupted}: {f.message}") for f in found]
    return found


def interrupted_by(log: Log) -> str:
    """Which get_conn calls a controlled run interrupted while they waited ("" if none)."""
    calls = [c for c in log.calls if c.op == "get" and c.outcome == WAIT_INTERRUPTED]
    return " and ".join(f"{who(c.thread)}'s get_conn was interrupted while it waited"
                        for c in calls)
