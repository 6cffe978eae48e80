"""The stress judges on hand-written observations: no threads, every verdict explained.

Each case is a tiny timeline. The "no false alarm" cases are the orderings a correct pool
produces when another thread runs between two stamps.
"""

from __future__ import annotations

from poolcheck.causes import Cause
from poolcheck.judge.judges import (
    Finding,
    judge,
    judge_bound,
    judge_closed,
    judge_errors,
    judge_exclusive,
    judge_linearizable,
    judge_timeout,
    judge_wakeup,
)
from poolcheck.observe.facts import RoundResult, RoundSpec
from poolcheck.observe.recording import CallRecord, Log
from poolcheck.run.engine import settle_kept
from poolcheck.settings import GRACE


def spec(maxsize: int = 1, block: bool = True) -> RoundSpec:
    return RoundSpec(seed=0, threads=2, ops=1, maxsize=maxsize, block=block, closer=False)


def round_of(calls: list[CallRecord], maxsize: int = 1, block: bool = True,
             created: dict[int, float] | None = None,
             closed: dict[int, float] | None = None) -> RoundResult:
    log = Log(created=created or {}, closed=closed or {}, calls=calls)
    return RoundResult(spec(maxsize, block), log, {})


def get(thread: int, conn: int | None, call: float, ret: float, outcome: str = "ok",
        timeout: float | None = None) -> CallRecord:
    return CallRecord(thread, "get", conn, timeout, call, ret, outcome)


def put(thread: int, conn: int, call: float, ret: float, kept: bool = True) -> CallRecord:
    return CallRecord(thread, "put", conn, None, call, ret, "ok", kept)


def names(findings: list[Finding]) -> list[str]:
    return [f.invariant for f in findings]


def test_exclusive_overlap_is_caught() -> None:
    r = round_of([get(0, 1, 0.0, 0.1), get(1, 1, 0.2, 0.3), put(0, 1, 0.4, 0.5)])
    assert names(judge_exclusive(r)) == ["exclusive"]


def test_exclusive_handover_between_stamps_is_no_alarm() -> None:
    # thread 0 calls put at 0.40; the pool hands #1 to thread 1, whose get (called at
    # 0.10, waiting) returns at 0.45, before thread 0's put has even returned
    r = round_of([get(0, 1, 0.0, 0.05), get(1, 1, 0.10, 0.45), put(0, 1, 0.40, 0.50)],
                 created={1: 0.01})
    assert judge(r) == []


def test_bound_block_counts_open_connections_at_creation() -> None:
    r = round_of([get(0, 1, 0.0, 0.1), get(1, 2, 0.0, 0.2)], created={1: 0.05, 2: 0.15})
    assert names(judge_bound(r)) == ["bound"]
    closed_first = round_of([get(0, 1, 0.0, 0.1), get(1, 2, 0.0, 0.2)],
                            created={1: 0.05, 2: 0.15}, closed={1: 0.12})
    assert judge_bound(closed_first) == []


def test_bound_nonblock_counts_surely_idle_connections() -> None:
    calls = [get(0, 1, 0.0, 0.1), get(1, 2, 0.0, 0.1), put(0, 1, 0.2, 0.3),
             put(1, 2, 0.4, 0.5)]
    assert names(judge_bound(round_of(calls, block=False))) == ["bound"]
    # thread 2's get that will take #1 began at 0.35: #1 may already be gone at 0.5
    taken = [*calls, get(2, 1, 0.35, 0.6)]
    assert judge_bound(round_of(taken, block=False)) == []


def test_bound_nonblock_a_failed_get_may_have_taken_what_the_pool_closed() -> None:
    """urllib3's urlopen takes idle #1, sending on it fails, it closes #1 and raises: #1
    was not idle while that call ran, whatever the order of the stamps."""
    calls = [get(0, 1, 0.0, 0.1), get(1, 2, 0.0, 0.1), put(0, 1, 0.2, 0.3),
             get(2, None, 0.35, 0.7, "ConnectFailed"), put(1, 2, 0.4, 0.5)]
    assert judge_bound(round_of(calls, block=False, closed={1: 0.6})) == []
    # closed after the failed call returned, or by no call at all: still a violation
    assert names(judge_bound(round_of(calls, block=False, closed={1: 0.8}))) == ["bound"]
    timed_out = [*calls[:3], get(2, None, 0.35, 0.7, "EmptyPoolError"), calls[4]]
    assert names(judge_bound(round_of(timed_out, block=False, closed={1: 0.6}))) == [
        "bound"]


def test_timeout_early_and_late() -> None:
    early = round_of([get(0, None, 0.0, 0.05, "EmptyPoolError", timeout=0.1)])
    late = round_of([get(0, None, 0.0, 2.5, "EmptyPoolError", timeout=0.1)])
    on_time = round_of([get(0, None, 0.0, 0.1005, "EmptyPoolError", timeout=0.1)])
    assert names(judge_timeout(early)) == ["timeout"]
    assert judge_timeout(early)[0].cause is Cause.EMPTY_TOO_EARLY
    assert names(judge_timeout(late)) == ["timeout"]
    assert judge_timeout(late)[0].cause is None  # late: the invariant says it all
    assert judge_timeout(on_time) == []


def test_wakeup_idle_connection_while_waiting() -> None:
    calls = [get(0, 1, 0.0, 0.1), get(1, None, 0.2, 1.2, "EmptyPoolError", timeout=1.0),
             put(0, 1, 0.3, 0.31)]
    r = round_of(calls, created={1: 0.05})
    assert names(judge_wakeup(r)) == ["wakeup"]
    # someone else began taking it soon after: no lost wakeup
    served = round_of([*calls, get(2, 1, 0.31 + GRACE / 2, 0.9)], created={1: 0.05})
    assert judge_wakeup(served) == []


def test_wakeup_free_slot_while_waiting() -> None:
    calls = [get(0, 1, 0.0, 0.1), get(1, None, 0.2, 1.2, "EmptyPoolError", timeout=1.0),
             CallRecord(0, "discard", 1, None, 0.3, 0.31, "ok")]
    r = round_of(calls, created={1: 0.05}, closed={1: 0.29})
    r.log.closed_by_caller.add(1)
    assert judge_wakeup(r) == []  # no capacity probe: the slot may have been lost
    r.capacity_intact = True
    assert names(judge_wakeup(r)) == ["wakeup"]
    # before put_conn(None) returned, the slot was not yet free
    slow = round_of([*calls[:2], CallRecord(0, "discard", 1, None, 0.3, 1.25, "ok")],
                    created={1: 0.05}, closed={1: 0.29})
    slow.log.closed_by_caller.add(1)
    slow.capacity_intact = True
    assert judge_wakeup(slow) == []


def test_closed_and_errors() -> None:
    close = CallRecord(0, "close", None, None, 1.0, 1.1, "ok")
    r = round_of([close, get(1, 1, 1.2, 1.3), put(1, 1, 1.4, 1.5, kept=True)],
                 created={1: 1.25})
    assert names(judge_closed(r)) == ["closed"]
    early = round_of([get(1, None, 0.1, 0.2, "ClosedPoolError"), close])
    assert names(judge_errors(early)) == ["errors"]
    during = round_of([get(1, None, 0.9, 1.05, "ClosedPoolError"), close])
    assert judge_errors(during) == []


def test_handing_out_a_connection_the_caller_closed() -> None:
    calls = [get(0, 1, 0.0, 0.1), CallRecord(0, "discard", 1, None, 0.3, 0.31, "ok"),
             get(1, 1, 0.4, 0.5)]
    r = round_of(calls, created={1: 0.05}, closed={1: 0.29})
    assert "closed" in names(judge(r))


def test_wakeup_served_late() -> None:
    # the waiter got a new connection a second after a slot was freed: not served promptly
    late = round_of([get(0, 1, 0.0, 0.1), get(1, 2, 0.2, 1.2, timeout=1.0),
                     CallRecord(0, "discard", 1, None, 0.3, 0.31, "ok")],
                    created={1: 0.05, 2: 1.19}, closed={1: 0.29})
    late.log.closed_by_caller.add(1)
    late.capacity_intact = True
    assert names(judge_wakeup(late)) == ["wakeup"]
    # ... or the very connection returned long before it got it
    reused = round_of([get(0, 1, 0.0, 0.1), get(1, 1, 0.2, 1.2, timeout=1.0),
                       put(0, 1, 0.3, 0.31)], created={1: 0.05})
    assert names(judge_wakeup(reused)) == ["wakeup"]
    prompt = round_of([get(0, 1, 0.0, 0.1), get(1, 1, 0.2, 0.9, timeout=1.0),
                       put(0, 1, 0.85, 0.86)], created={1: 0.05})
    assert judge_wakeup(prompt) == []


def test_a_put_proved_kept_by_a_later_get() -> None:
    # thread 0's put of #1 returns only after thread 1 got #1 and the pool closed it on
    # thread 1's own return: #1 was kept, though it is closed when thread 0 looks
    log = Log(created={1: 0.01}, closed={1: 0.5}, calls=[
        get(0, 1, 0.0, 0.1), put(0, 1, 0.2, 0.6, kept=False), get(1, 1, 0.3, 0.4),
        put(1, 1, 0.45, 0.55, kept=False)])
    settle_kept(log)
    assert [c.kept for c in log.calls if c.op == "put"] == [True, False]
    assert judge_linearizable(RoundResult(spec(1, False), log, {})) == []


def close_call(thread: int, call: float, ret: float) -> CallRecord:
    return CallRecord(thread, "close", None, None, call, ret, "ok")


def test_a_waiter_close_did_not_wake_is_closed() -> None:
    # thread 1 waits (timeout 1 s); close() returns at 0.11; it gives up only at 1.0
    for outcome in ("ClosedPoolError", "EmptyPoolError"):
        r = round_of([get(0, 1, 0.0, 0.01), get(1, None, 0.05, 1.0, outcome, 1.0),
                      close_call(0, 0.1, 0.11)])
        assert names(judge_closed(r)) == ["closed"]
        assert "did not wake" in judge_closed(r)[0].message
        assert judge_closed(r)[0].cause is Cause.CLOSE_WOKE_NOBODY


def test_a_waiter_woken_by_close_or_begun_after_it_is_no_alarm() -> None:
    woken = get(1, None, 0.05, 0.12 + GRACE / 2, "ClosedPoolError", 1.0)
    after = get(2, None, 0.2, 1.2, "EmptyPoolError", 1.0)  # began after close() was called
    r = round_of([get(0, 1, 0.0, 0.01), woken, close_call(0, 0.1, 0.11), after])
    assert judge_closed(r) == []


def test_a_connection_closed_while_held_is_caught() -> None:
    # close() (0.20-0.25) closes #1 at 0.22, while thread 0 holds it (0.1 to its put at 0.4)
    calls = [get(0, 1, 0.0, 0.1), close_call(1, 0.2, 0.25), put(0, 1, 0.4, 0.5, kept=False)]
    r = round_of(calls, created={1: 0.05}, closed={1: 0.22})
    assert names(judge_closed(r)) == ["closed"]
    assert "while thread 0 still held it" in judge_closed(r)[0].message
    assert judge_closed(r)[0].cause is Cause.CLOSED_WHILE_HELD
    # with no close() at all, the pool used a connection a caller holds
    r = round_of([get(0, 1, 0.0, 0.1), put(0, 1, 0.4, 0.5, kept=False)],
                 created={1: 0.05}, closed={1: 0.22})
    assert names(judge_exclusive(r)) == ["exclusive"]


def test_closing_a_returned_or_caller_closed_connection_is_no_alarm() -> None:
    # closed during the put (after its call stamp): the contract's "closed when returned"
    calls = [get(0, 1, 0.0, 0.1), close_call(1, 0.2, 0.25), put(0, 1, 0.3, 0.5, kept=False)]
    assert judge(round_of(calls, created={1: 0.05}, closed={1: 0.31})) == []
    # the caller closed it itself, then gave the slot back
    calls = [get(0, 1, 0.0, 0.1), CallRecord(0, "discard", 1, None, 0.3, 0.31, "ok")]
    r = round_of(calls, created={1: 0.05}, closed={1: 0.2})
    r.log.closed_by_caller.add(1)
    assert judge(r) == []
