"""The linearizability checker, its history format, report and command, on hand-written histories.

Each rejecting test names the invariant the model gives and the call that cannot be placed;
each accepting test that depends on a subtle point (a pending call, a reordering) has a
twin without that point that must be rejected, so neither half can pass by accident.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import random
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from poolcheck import model
from poolcheck.app.linearize_command import add_linearize_parser, run_linearize
from poolcheck.errors import HistoryError
from poolcheck.judge.linearize import check
from poolcheck.judge.linearize_report import format_report, render_html
from poolcheck.observe.history import Event, History, Pool, Recorder, dump_history, load_history
from poolcheck.pool import Pool as RealPool

# -- building histories by hand ------------------------------------------------------------


def get(thread: int, conn: int, call: float, ret: float) -> Event:
    return Event(thread, "get", call, ret, conn=conn)


def fails(thread: int, outcome: str, call: float, ret: float) -> Event:
    return Event(thread, "get", call, ret, outcome=outcome)


def put(thread: int, conn: int, call: float, ret: float, kept: bool = True) -> Event:
    return Event(thread, "put", call, ret, conn=conn, kept=kept)


def discard(thread: int, conn: int, call: float, ret: float) -> Event:
    return Event(thread, "put", call, ret, conn=conn, discard=True)


def close(thread: int, call: float, ret: float) -> Event:
    return Event(thread, "close", call, ret)


def pending(thread: int, op: str, call: float, conn: int | None = None) -> Event:
    return Event(thread, op, call, None, outcome="pending", conn=conn)  # type: ignore[arg-type]


def history(maxsize: int, block: bool, *events: Event) -> History:
    return History(Pool(maxsize, block), events)


def verdict(h: History) -> str:
    return check(h).verdict


# -- accepted ------------------------------------------------------------------------------


def test_sequential_history_is_linearizable_in_its_own_order() -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), get(1, 1, 4, 5), discard(1, 1, 6, 7),
                get(0, 2, 8, 9))
    result = check(h)
    assert result.verdict == "linearizable"
    assert result.prefix == (0, 1, 2, 3, 4)
    assert result.state.out == {2}


def test_overlapping_calls_are_reordered_against_call_order() -> None:
    # EmptyPoolError was called after the put began, yet must take effect before it
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 6), fails(1, model.EMPTY, 3, 7))
    result = check(h)
    assert result.verdict == "linearizable"
    assert result.prefix == (0, 2, 1)


def test_calls_that_touch_count_as_overlapping() -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), fails(1, model.EMPTY, 3, 4))
    assert verdict(h) == "linearizable"


def test_any_idle_connection_may_be_reused() -> None:
    # the bundled pool would hand out 2 (LIFO); the contract allows either
    h = history(2, False, get(0, 1, 0, 1), get(1, 2, 0, 1), put(0, 1, 2, 3), put(1, 2, 4, 5),
                get(2, 1, 6, 7))
    assert verdict(h) == "linearizable"


def test_pending_get_that_took_effect_explains_empty_pool_error() -> None:
    without = history(1, True, fails(1, model.EMPTY, 1, 2))
    assert verdict(without) == "not linearizable"
    h = history(1, True, pending(0, "get", 0), fails(1, model.EMPTY, 1, 2))
    result = check(h)
    assert result.verdict == "linearizable"
    assert result.prefix == (0, 1)
    took = result.effects[0]
    assert took.op == "get" and took.conn is not None and took.conn < 0  # a new, unnamed one


def test_pending_get_that_took_an_idle_connection() -> None:
    calls = (get(0, 1, 0, 1), put(0, 1, 2, 3))
    assert verdict(history(1, True, *calls, fails(2, model.EMPTY, 5, 6))) == "not linearizable"
    h = history(1, True, *calls, pending(1, "get", 4), fails(2, model.EMPTY, 5, 6))
    result = check(h)
    assert result.verdict == "linearizable"
    assert result.effects[2] == model.Call("get", 1)


def test_pending_get_that_had_no_effect() -> None:
    # had it created a connection, thread 1 could not have created one (maxsize 1)
    h = history(1, True, pending(0, "get", 0), get(1, 1, 1, 2), put(1, 1, 3, 4))
    result = check(h)
    assert result.verdict == "linearizable"
    assert 0 not in result.prefix


def test_pending_put_that_kept_the_connection() -> None:
    calls = (get(0, 1, 0, 1), pending(0, "put", 2, conn=1), get(1, 1, 3, 4))
    result = check(history(1, False, *calls))
    assert result.verdict == "linearizable"
    assert result.effects[1] == model.Call("put", 1, kept=True)


def test_pending_put_that_closed_the_connection() -> None:
    calls = (get(0, 1, 0, 1), pending(0, "put", 2, conn=1), get(1, 2, 3, 4))
    result = check(history(1, True, *calls))
    assert result.verdict == "linearizable"
    assert result.effects[1] == model.Call("put", 1, kept=False)


def test_pending_close_explains_closed_pool_error() -> None:
    assert verdict(history(1, False, fails(1, model.CLOSED, 1, 2))) == "not linearizable"
    h = history(1, False, pending(0, "close", 0), fails(1, model.CLOSED, 1, 2))
    assert verdict(h) == "linearizable"


def test_pending_call_takes_effect_only_after_it_was_called() -> None:
    h = history(1, False, fails(1, model.CLOSED, 0, 1), pending(0, "close", 2))
    assert verdict(h) == "not linearizable"


def test_failed_connect_holds_its_slot_while_it_runs() -> None:
    # the pool counts the slot while connecting, so a concurrent caller may find it full
    assert verdict(history(1, True, fails(0, "ConnectionRefusedError", 0, 3),
                           fails(1, model.EMPTY, 1, 2))) == "linearizable"
    result = check(history(1, True, fails(0, "ConnectionRefusedError", 0, 3),
                           fails(1, model.EMPTY, 4, 5)))
    assert result.verdict == "not linearizable"
    assert result.failed == 1 and result.prefix == (0,)


# -- rejected ------------------------------------------------------------------------------


def test_connection_handed_to_two_overlapping_callers() -> None:
    h = history(2, False, get(0, 1, 0, 2), get(1, 1, 1, 3), put(0, 1, 4, 5), put(1, 1, 6, 7))
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.failed in (0, 1)
    assert result.reason is not None and result.reason.invariant == "exclusive"
    assert len(result.prefix) == 1


def test_empty_pool_error_after_a_connection_was_returned_idle() -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), fails(1, model.EMPTY, 4, 5))
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.prefix == (0, 1)
    assert result.failed == 2
    assert result.reason is not None and result.reason.invariant == "capacity"


def test_pool_keeping_more_than_maxsize_idle() -> None:
    h = history(1, False, get(0, 1, 0, 1), get(1, 2, 0.5, 1.5), put(0, 1, 2, 3),
                put(1, 2, 4, 5))
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.failed == 3
    assert result.reason is not None and result.reason.invariant == "bound"


def test_closed_pool_error_before_any_close_began() -> None:
    h = history(1, False, fails(0, model.CLOSED, 0, 1), close(1, 2, 3))
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.failed == 0 and result.prefix == ()
    assert result.reason is not None and result.reason.invariant == "errors"


def test_connect_attempt_beyond_maxsize() -> None:
    h = history(1, True, get(0, 1, 0, 1), fails(1, "ConnectionRefusedError", 2, 3))
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.failed == 1
    assert result.reason == model.Rejected(
        model.Invariant.BOUND,
        "the pool called its factory with 1 of 1 connections already in existence")


def some_interleaving_accepted(h: History) -> bool:
    """What a checker of whole-branch interleavings (program order only) would answer."""
    branches = [[e for e in h.events if e.thread == t] for t in h.threads]
    owners = [t for t, branch in enumerate(branches) for _ in branch]
    for order in set(itertools.permutations(owners)):
        cursor = [0] * len(branches)
        state: model.State | model.Rejected = model.initial(h.pool.maxsize, h.pool.block)
        for t in order:
            assert isinstance(state, model.State)
            state = model.step(state, branches[t][cursor[t]].model_call())
            cursor[t] += 1
            if isinstance(state, model.Rejected):
                break
        else:
            return True
    return False


def test_real_time_order_rules_out_what_program_order_allows() -> None:
    # thread 1's get returned before thread 0 began to put connection 1 back: it cannot
    # have come after that put, although each thread's own order allows it
    h = history(1, False, get(0, 1, 0, 1), get(1, 1, 1.5, 1.8), put(0, 1, 2, 3),
                put(1, 1, 4, 5))
    assert some_interleaving_accepted(h)
    result = check(h)
    assert result.verdict == "not linearizable"
    assert result.prefix == (0,) and result.failed == 1
    assert result.reason is not None and result.reason.invariant == "exclusive"


def test_tiny_budget_is_undecided_not_wrong() -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), get(1, 1, 4, 5), put(1, 1, 6, 7))
    assert check(h, budget_steps=4).verdict == "linearizable"
    result = check(h, budget_steps=3)
    assert result.verdict == "undecided"
    assert result.prefix == (0, 1, 2) and result.steps == 3


# -- agreement with exhaustive search on small random histories ---------------------------


def small_history(rng: random.Random) -> History:
    """A few calls of a correct pool at random overlapping times, perhaps then broken."""
    maxsize, block = rng.choice([(1, True), (2, True), (1, False), (2, False)])
    threads = rng.randint(2, 3)
    idle: list[int] = []
    held: dict[int, int] = {}
    live = made = 0
    closed = False
    free_at = [0.0] * threads
    events: list[Event] = []
    for n in range(rng.randint(3, 6)):
        t = rng.randrange(threads)
        now = max(free_at[t], n + rng.random())
        start, end = now - rng.random() * 1.5, now + rng.random() * 1.5
        start = max(start, free_at[t])
        free_at[t] = end + 0.01
        if rng.random() < 0.1:
            closed, idle = True, []
            events.append(close(t, start, end))
        elif t in held:
            conn = held.pop(t)
            kept = not closed and len(idle) < maxsize
            idle += [conn] if kept else []
            live -= 0 if kept else 1
            events.append(put(t, conn, start, end, kept))
        elif closed:
            events.append(fails(t, model.CLOSED, start, end))
        elif idle:
            held[t] = idle.pop(rng.randrange(len(idle)))
            events.append(get(t, held[t], start, end))
        elif (not block or live < maxsize) and rng.random() < 0.2:
            events.append(fails(t, "ConnectionRefusedError", start, end))
        elif not block or live < maxsize:
            made, live = made + 1, live + 1
            held[t] = made
            events.append(get(t, made, start, end))
        else:
            events.append(fails(t, model.EMPTY, start, end))
    if rng.random() < 0.3:  # a thread hangs in its last call
        last = max(range(len(events)), key=lambda i: events[i].call)
        e = events[last]
        events[last] = dataclasses.replace(e, ret=None, outcome="pending", kept=False,
                                           conn=e.conn if e.op == "put" else None)
    if rng.random() < 0.5:  # break it: another connection, another outcome, another time
        i = rng.randrange(len(events))
        e = events[i]
        if e.op == "put" and not e.pending:
            events[i] = dataclasses.replace(e, kept=not e.kept)
        elif e.op == "get" and e.outcome == model.OK:
            events[i] = dataclasses.replace(e, conn=rng.randint(1, made + 1))
        elif e.op == "get" and not e.pending:
            events[i] = dataclasses.replace(e, outcome=rng.choice([model.EMPTY, model.CLOSED]))
    return History(Pool(maxsize, block), tuple(events))


def exhaustive(h: History) -> bool:
    """Every real-time-respecting order, every pending call in or out: the definition.

    A get whose factory raised holds a slot for a while: a new connection, given back later.
    """
    events = h.events
    fresh = min([0, *(e.conn for e in events if e.conn is not None)]) - 1
    items: list[tuple[int, model.Call | None]] = []  # (event, its call; None: pending)
    for i, e in enumerate(events):
        if e.op == "get" and e.outcome not in (model.OK, model.EMPTY, model.CLOSED, "pending"):
            items += [(i, model.Call("get", fresh - i)), (i, model.Call("discard", fresh - i))]
        else:
            items.append((i, None if e.pending else e.model_call()))

    def outcomes(k: int, state: model.State) -> list[model.Call]:
        i, call = items[k]
        e = events[i]
        if call is not None:
            return [call]
        if e.op == "get":
            return [model.Call("get", c) for c in state.idle] + [model.Call("get", fresh - i)]
        if e.op == "put":
            return [model.Call("put", e.conn, kept=True), model.Call("put", e.conn, kept=False)]
        return [model.Call("close")]

    def returned_before(j: int, k: int) -> bool:
        ret = events[items[j][0]].ret
        return ret is not None and ret < events[items[k][0]].call

    def search(state: model.State, left: frozenset[int]) -> bool:
        if all(items[k][1] is None for k in left):
            return True
        for k in left:
            if any(returned_before(j, k) for j in left):
                continue  # something still unplaced returned before this was called
            for call in outcomes(k, state):
                after = model.step(state, call)
                if isinstance(after, model.State) and search(after, left - {k}):
                    return True
        return False

    return search(model.initial(h.pool.maxsize, h.pool.block), frozenset(range(len(items))))


def test_agrees_with_exhaustive_search_on_random_small_histories() -> None:
    rng = random.Random(20240611)
    seen = {True: 0, False: 0}
    for _ in range(400):
        h = small_history(rng)
        expected = exhaustive(h)
        seen[expected] += 1
        assert check(h).ok == expected, h
    assert min(seen.values()) > 50  # both verdicts were really exercised


def simulated(calls: int, seed: int) -> History:
    """A correct pool (block, maxsize 3) driven by 6 threads whose calls overlap heavily."""
    rng = random.Random(seed)
    idle: list[int] = []
    held: dict[int, int] = {}
    live = made = 0
    busy = [-1.0] * 6
    events: list[Event] = []
    now = 0.0
    for _ in range(calls):
        now += 1.0
        free = [t for t in range(6) if busy[t] < now] or [min(range(6), key=busy.__getitem__)]
        t = rng.choice(free)
        start = rng.uniform(max(busy[t], now - 10), now) if busy[t] < now else busy[t]
        now = max(now, start)
        busy[t] = end = now + rng.uniform(0, 10)
        if t in held:
            idle.append(held.pop(t))
            events.append(put(t, idle[-1], start, end))
        elif idle:
            held[t] = idle.pop()
            events.append(get(t, held[t], start, end))
        elif live < 3:
            made, live = made + 1, live + 1
            held[t] = made
            events.append(get(t, made, start, end))
        else:
            events.append(fails(t, model.EMPTY, start, end))
    return History(Pool(3, True), tuple(events))


def test_long_histories_are_decided_both_ways() -> None:
    h = simulated(3000, seed=7)
    assert check(h).verdict == "linearizable"
    events = list(h.events)
    middle = next(i for i in range(1500, 3000) if events[i].op == "get" and events[i].conn)
    events[middle] = dataclasses.replace(events[middle], conn=99)  # a connection from nowhere
    result = check(History(h.pool, tuple(events)))
    assert result.verdict == "not linearizable"
    assert result.failed == middle
    assert len(result.prefix) >= middle - 20


def test_model_forgets_only_connections_that_are_closed() -> None:
    state = model.initial(3, True)
    for call in (model.Call("get", 1), model.Call("get", 2), model.Call("get", 3),
                 model.Call("put", 1, kept=True), model.Call("discard", 2)):
        after = model.step(state, call)
        assert isinstance(after, model.State)
        state = after
    assert model.forget(state, 2).seen == {1, 3}  # closed: forgotten
    for live in (1, 3, 4):  # idle, checked out, never seen: kept as they are
        assert model.forget(state, live) is state


def test_in_memory_history_is_validated() -> None:
    with pytest.raises(HistoryError, match="must name its"):
        check(history(1, True, Event(0, "get", 0, 1)))


# -- a real run of the bundled pool --------------------------------------------------------


class FakeConnection:
    def __init__(self, ident: int) -> None:
        self.id = ident
        self.closed_by: int | None = None

    def close(self) -> None:
        self.closed_by = threading.get_ident()


def test_recorded_run_of_the_bundled_pool_is_linearizable() -> None:
    ids = itertools.count(1)
    made = itertools.count(1)

    def factory() -> FakeConnection:
        if next(made) % 7 == 1:  # the first call, whoever makes it, and every 7th
            raise ConnectionRefusedError("refused (test)")
        return FakeConnection(next(ids))

    pool = RealPool("example.invalid", maxsize=2, block=True, timeout=5.0,
                    connection_factory=factory)
    recorder = Recorder(maxsize=2, block=True)
    start = threading.Barrier(4)

    def worker(number: int) -> None:
        rng = random.Random(number)
        start.wait()
        for n in range(150):
            if number == 0 and n == 140:
                ticket = recorder.begin("close")
                pool.close()
                recorder.end(ticket)
            ticket = recorder.begin("get")
            try:
                conn = pool.get_conn(timeout=rng.choice([0.0, None]))
            except Exception as exc:
                recorder.end(ticket, type(exc).__name__)
                continue
            recorder.end(ticket, conn=conn.id)
            if rng.random() < 0.1:
                conn.close()
                ticket = recorder.begin("put", conn.id, discard=True)
                pool.put_conn(None)
                recorder.end(ticket)
            else:
                ticket = recorder.begin("put", conn.id)
                pool.put_conn(conn)
                recorder.end(ticket, kept=conn.closed_by != threading.get_ident())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: more overlapping calls
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    h = recorder.history()
    outcomes = {e.outcome for e in h.events}
    assert {"ok", "ClosedPoolError", "ConnectionRefusedError"} <= outcomes
    assert len(h.threads) == 4
    result = check(h)
    assert result.verdict == "linearizable", format_report(h, result)


# -- the recorder and the file format ------------------------------------------------------


def test_recorder_times_calls_and_leaves_unfinished_ones_pending() -> None:
    ticks = iter([10.0, 10.5, 11.0, 12.0, 12.5, 13.0])
    recorder = Recorder(maxsize=1, block=False, clock=lambda: next(ticks))
    first = recorder.begin("get", thread=3)
    recorder.begin("put", 7, thread=4)
    recorder.end(first, conn=7)
    recorder.begin("get", thread=3)
    h = recorder.history()
    assert h.pool == Pool(1, False)
    assert h.events == (
        Event(3, "get", 0.5, 2.0, conn=7),
        Event(4, "put", 1.0, None, outcome="pending", conn=7),
        Event(3, "get", 2.5, None, outcome="pending"),
    )
    with pytest.raises(RuntimeError):
        recorder.end(first)


def test_dump_then_load_gives_the_same_history(tmp_path: Path) -> None:
    h = history(2, True, get(0, 1, 0.001, 0.0012), fails(1, model.EMPTY, 0.0011, 0.102),
                put(0, 1, 0.0013, 0.0014), discard(2, 3, 0.5, 0.6), close(0, 0.7, 0.8),
                fails(1, "ConnectionRefusedError", 0.9, 1.0), pending(3, "get", 0.9))
    path = tmp_path / "h.jsonl"
    dump_history(h, path)
    loaded = load_history(path)
    assert loaded.pool == h.pool
    assert [dataclasses.replace(e, line=None) for e in loaded.events] == list(h.events)
    assert [e.line for e in loaded.events] == list(range(2, 9))


HEADER = '{"pool": {"maxsize": 1, "block": true}}'
GET = '{"thread": 0, "op": "get", "conn": 1, "outcome": "ok", "call": 0, "return": 1}'
MALFORMED = [
    ("", 1, "empty"),
    ('{"pool": {"maxsize": 0, "block": true}}', 1, "maxsize must be an int >= 1"),
    ('{"pool": {"maxsize": "2", "block": true}}', 1, "maxsize must be an int >= 1"),
    ('{"pool": {"maxsize": true, "block": true}}', 1, "maxsize must be an int >= 1"),
    ('{"pool": {"maxsize": 1}}', 1, '"block"'),
    ('{"pool": {"maxsize": 1, "block": 1}}', 1, "block must be true or false"),
    (GET, 1, "describe the pool"),
    (f"{HEADER}\n{GET}\n{{oops", 3, "bad JSON"),
    (f"{HEADER}\n[1, 2]", 2, "expected a JSON object"),
    (f'{HEADER}\n{{"thread": 0, "conn": 1, "outcome": "ok", "call": 0, "return": 1}}', 2,
     'missing field "op"'),
    (f"{HEADER}\n{GET}\n" + GET.replace('"call": 0', '"call": 2').replace('"get"', '"take"'),
     3, "unknown op 'take'"),
    (f"{HEADER}\n" + GET.replace('"return": 1', '"return": -1'), 2, "before"),
    (f"{HEADER}\n" + GET.replace('"outcome": "ok"', '"outcome": "pending"'), 2,
     '"return" is not null'),
    (f"{HEADER}\n" + GET.replace('"return": 1', '"return": null'), 2, "not \"pending\""),
    (f"{HEADER}\n" + GET.replace('"conn": 1', '"conn": null'), 2, 'must name its "conn"'),
    (f'{HEADER}\n{{"thread": 0, "op": "get", "outcome": "ok", "call": 0, "return": 1}}', 2,
     'missing field "conn"'),
    (f'{HEADER}\n{{"thread": 0, "op": "put", "conn": 1, "outcome": "ok", "call": 0, '
     '"return": 1}', 2, '"kept"'),
    (f'{HEADER}\n{{"thread": 0, "op": "put", "conn": null, "outcome": "ok", "kept": true, '
     '"call": 0, "return": 1}', 2, 'must name its "conn"'),
    (f"{HEADER}\n" + GET.replace('"thread": 0', '"thread": "a"'), 2, '"thread" must be'),
    (f"{HEADER}\n" + GET.replace('"call": 0', '"call": NaN'), 2, "NaN"),
    (f"{HEADER}\n" + GET.replace("{", '{"colour": 1, ', 1), 2, "unknown field 'colour'"),
    (f"{HEADER}\n" + GET.replace("{", '{"call": 0, ', 1), 2, "appears twice"),
    (f"{HEADER}\n{GET}\n\n{GET}", 3, "blank line"),
    (f"{HEADER}\n{GET}\n" + GET.replace('"call": 0', '"call": 0.5'), 3, "before its previous"),
    (f"{HEADER}\n{HEADER}", 2, "second pool header"),
]


@pytest.mark.parametrize(("text", "line", "problem"), MALFORMED)
def test_malformed_history_names_the_line(tmp_path: Path, text: str, line: int,
                                          problem: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text + ("\n" if text else ""))
    with pytest.raises(HistoryError) as info:
        load_history(path)
    assert info.value.line == line
    assert problem in str(info.value)
    assert run_linearize(str(path), None, None) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and f"line {line}: " in err and "Traceback" not in err


def test_missing_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_linearize(str(tmp_path / "nowhere.jsonl"), None, None) == 2
    assert "cannot read" in capsys.readouterr().err


# -- the command and its report ------------------------------------------------------------


@pytest.mark.parametrize(("h", "budget", "code", "headline"), [
    (history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3)), None, 0, "LINEARIZABLE"),
    (history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), fails(1, model.EMPTY, 4, 5)), None, 1,
     "NOT LINEARIZABLE"),
    (history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3)), 1, 3, "UNDECIDED"),
])
def test_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], h: History,
                               budget: int | None, code: int, headline: str) -> None:
    path, page = tmp_path / "h.jsonl", tmp_path / "t.html"
    dump_history(h, path)
    assert run_linearize(str(path), str(page), budget) == code
    out = capsys.readouterr().out
    assert out.startswith(f"poolcheck linearize: {headline}\n")
    assert page.read_text().startswith("<!doctype html>")


def test_report_shows_prefix_failing_call_and_reason() -> None:
    h = load_from_text(HEADER + "\n" + "\n".join([
        '{"thread": 0, "op": "get", "conn": 1, "outcome": "ok", "call": 0, "return": 1}',
        '{"thread": 0, "op": "put", "conn": 1, "outcome": "ok", "kept": true, "call": 2, '
        '"return": 3}',
        '{"thread": 1, "op": "get", "conn": null, "outcome": "EmptyPoolError", "call": 4, '
        '"return": 5}',
    ]))
    report = format_report(h, check(h))
    assert "places 2 calls; after it the pool has idle {1}, checked out none, open" in report
    assert "line 4: thread 1 get -> EmptyPoolError" in report
    assert "refuses it in that state (capacity): get_conn raised EmptyPoolError with 1 idle" in (
        report)
    assert "> FAILS get -> EmptyPoolError" in report  # the timeline
    for row in ("line 2      0.000000      1.000000  get -> 1               #1",
                "line 3      2.000000      3.000000  put 1 kept             #2"):
        assert row in report  # the per-thread table


def test_html_page_is_self_contained_with_lanes_and_marks() -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), fails(1, model.EMPTY, 4, 5),
                pending(2, "get", 5.5))
    page = render_html(h, check(h))
    assert page.count('class="lane"') == 3
    assert page.count('class="bar placed"') == 2
    assert page.count('class="bar failed"') == 1
    assert 'class="bar unplaced pending"' in page
    assert "capacity: get_conn raised EmptyPoolError" in page
    for external in ("http://", "https://", "src=", "<link", "<script"):
        assert external not in page


def test_large_report_shows_each_thread_around_the_failure() -> None:
    h = simulated(2000, seed=3)
    events = list(h.events)
    events[1000] = dataclasses.replace(events[1000], kept=False) if events[1000].op == "put" \
        else dataclasses.replace(events[1000], conn=99, outcome="ok")
    broken = History(h.pool, tuple(events))
    report = format_report(broken, check(broken))
    assert "NOT LINEARIZABLE" in report and "FAILS" in report
    assert "earlier calls" in report and "later calls" in report
    assert len(report.splitlines()) < 200


def test_parser_registers_the_command() -> None:
    parser = argparse.ArgumentParser(prog="poolcheck")
    add_linearize_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["linearize", "h.jsonl", "--html", "t.html", "--budget", "10"])
    assert (args.history, args.html, args.budget) == ("h.jsonl", "t.html", 10)
    assert callable(args.run)
    with pytest.raises(SystemExit):
        parser.parse_args(["linearize", "h.jsonl", "--budget", "0"])


def load_from_text(text: str) -> History:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.jsonl"
        path.write_text(text + "\n")
        return load_history(path)


def evict(conn: int, at: float, since: float | None = None) -> Event:
    return Event(-1000 - conn, "evict", at if since is None else since, at, conn=conn)


def test_an_eviction_frees_the_slot_of_an_idle_connection() -> None:
    without = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), get(1, 2, 5, 6))
    assert verdict(without) == "not linearizable"  # 1 is idle: 2 would be one too many
    assert verdict(history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), evict(1, 4),
                           get(1, 2, 5, 6))) == "linearizable"


def test_an_eviction_of_a_held_connection_is_not_linearizable() -> None:
    h = history(1, True, get(0, 1, 0, 1), evict(1, 2), put(0, 1, 3, 4))
    result = check(h)
    assert result.verdict == "not linearizable"


def test_an_evict_line_round_trips_and_must_name_its_connection(tmp_path: Path) -> None:
    h = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), evict(1, 4))
    path = tmp_path / "h.jsonl"
    dump_history(h, path)
    assert load_history(path).events == tuple(dataclasses.replace(e, line=i + 2)
                                              for i, e in enumerate(h.events))
    path.write_text('{"pool": {"maxsize": 1, "block": true}}\n'
                    '{"thread": -2, "op": "evict", "outcome": "ok", "call": 1, "return": 1}\n')
    with pytest.raises(HistoryError, match='missing field "conn"'):
        load_history(path)


def test_an_eviction_may_have_taken_effect_before_the_close_was_seen() -> None:
    """A reaper takes 1 out of the idle list under its lock, and closes it only after
    thread 1 made connection 2: the evict spans from the put to the close."""
    late = history(1, True, get(0, 1, 0, 1), put(0, 1, 2, 3), get(1, 2, 5, 6))
    assert verdict(history(1, True, *late.events, evict(1, 7))) == "not linearizable"
    assert verdict(history(1, True, *late.events, evict(1, 7, since=2))) == "linearizable"
