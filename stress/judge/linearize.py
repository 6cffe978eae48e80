"""Is a concurrent history explained by an order of its calls that the model accepts?

The order must respect real time: a call that returned before another was called comes
first. The search is Wing & Gong's, with Lowe's memo of (calls placed, model state) so no
situation is explored twice, on Porcupine's doubly linked list of call and return entries:
a call may be placed next only while no return entry precedes it, that is, while every
call that returned before it began is already placed. Placing a call lifts its two entries
out of the list; backtracking puts them back, so the search is iterative and each step is
O(1) apart from the model's. A budget of model steps bounds the search: past it the
answer is "undecided", never an endless run.

Calls that never returned (pending) may have taken effect at any time after their call, or
never: they are tried after the completed calls at each point, with every outcome they
could have had, and the search succeeds once every completed call is placed. A get whose
connection factory raised is placed as two model calls (see ``_model_calls``).

The rules live in ``model.step`` only. The one other thing the search asks of the model is
``model.forget``: once no unplaced call names a closed connection, the state may drop it,
which keeps states small and equal where the future cannot tell them apart.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from poolcheck import model
from poolcheck.observe.history import Event, History, validate
from poolcheck.settings import HISTORY_BUDGET

Verdict = Literal["linearizable", "not linearizable", "undecided"]
LINEARIZABLE: Verdict = "linearizable"
NOT_LINEARIZABLE: Verdict = "not linearizable"
UNDECIDED: Verdict = "undecided"
DEFAULT_BUDGET = HISTORY_BUDGET


@dataclass(frozen=True)
class Result:
    """The verdict, and what the search learned on the way.

    ``prefix`` holds indices into ``history.events`` in the order found: the whole
    linearization when linearizable, else the longest linearizable prefix the search
    reached, after which the model is in ``state``. ``failed`` is the call that cannot be
    placed after that prefix and ``reason`` what the model says against placing it.
    ``effects`` tells, for each pending call in the prefix, the outcome it was given.
    """

    verdict: Verdict
    prefix: tuple[int, ...]
    state: model.State
    failed: int | None = None
    reason: model.Rejected | None = None
    effects: Mapping[int, model.Call] = field(default_factory=dict)
    steps: int = 0
    budget: int = DEFAULT_BUDGET

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE


class _Entry:
    """The call or return point of one model call of a completed event, in time order."""

    __slots__ = ("call", "conn", "index", "is_return", "match", "next", "prev", "rank", "time")

    def __init__(self, index: int, rank: int, time: float, call: model.Call,
                 is_return: bool) -> None:
        self.index = index  # position in history.events
        self.rank = rank  # position in _model_calls's list, which is in call order
        self.time = time
        self.call = call
        self.conn = call.conn  # the connection it names, if any
        self.is_return = is_return
        self.match: _Entry = self
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(entry: _Entry) -> None:
    """Unlink a call entry and its return entry (the return always follows the call)."""
    ret = entry.match
    assert entry.prev is not None and entry.next is not None and ret.prev is not None
    entry.prev.next = entry.next
    entry.next.prev = entry.prev
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(entry: _Entry) -> None:
    """Undo ``_lift``: the neighbours kept their links, so re-linking is exact."""
    ret = entry.match
    assert entry.prev is not None and entry.next is not None and ret.prev is not None
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    entry.prev.next = entry
    entry.next.prev = entry


def _link(calls: list[tuple[int, model.Call]], events: tuple[Event, ...]) -> _Entry:
    """The sentinel head of the list of call and return entries of ``calls``.

    Entries are in time order, calls before returns at equal times: calls that touch
    count as overlapping, so the checker never demands more order than the clock shows.
    """
    keyed: list[tuple[float, int, int, _Entry]] = []
    for rank, (index, model_call) in enumerate(calls):
        event = events[index]
        assert event.ret is not None
        call = _Entry(index, rank, event.call, model_call, is_return=False)
        ret = _Entry(index, rank, event.ret, model_call, is_return=True)
        call.match, ret.match = ret, call
        keyed += [(event.call, 0, rank, call), (event.ret, 1, rank, ret)]
    keyed.sort(key=lambda k: k[:3])
    head = _Entry(-1, -1, -math.inf, model.Call("close"), is_return=False)
    last = head
    for *_, entry in keyed:
        last.next, entry.prev = entry, last
        last = entry
    return head


def _model_calls(events: tuple[Event, ...],
                 fresh_conns: Iterator[int]) -> list[tuple[int, model.Call]]:
    """The model calls the completed events stand for, in call order: (event, call).

    Most events are one call. A get whose factory raised is two: a new connection, then
    that connection given back. The pool had to count the slot while it connected (or
    maxsize could be exceeded), so callers meanwhile may see it taken, which one atomic
    step cannot explain; back to back, the two calls are the model's own rule for it.
    """
    calls: list[tuple[int, model.Call]] = []
    for index in sorted((i for i, e in enumerate(events) if not e.pending),
                        key=lambda i: (events[i].call, i)):
        event = events[index]
        if event.op == "get" and event.outcome not in (model.OK, model.EMPTY, model.CLOSED):
            slot = next(fresh_conns)
            calls += [(index, model.Call("get", slot)), (index, model.Call("discard", slot))]
        else:
            calls.append((index, event.model_call()))
    return calls


@dataclass(frozen=True)
class _Pending:
    """A call that never returned, and the outcomes it may have had."""

    index: int
    bit: int
    time: float
    event: Event
    fresh_conn: int  # the id it gets if it created a connection: negative, never recorded

    @property
    def conn(self) -> int | None:
        """The recorded connection it names: a put's (a pending get returned none)."""
        return self.event.conn

    def candidates(self, state: model.State) -> list[model.Call]:
        """Every outcome that would change something; ``model.step`` judges each one."""
        e = self.event
        if e.op == "get":
            return [model.Call("get", conn) for conn in sorted(state.idle)] + [
                model.Call("get", self.fresh_conn)]
        if e.op == "close":
            return [model.Call("close")]
        if e.discard:
            return [model.Call("discard", e.conn)]
        return [model.Call("put", e.conn, kept=True), model.Call("put", e.conn, kept=False)]


def _pending_calls(events: tuple[Event, ...], fresh_conns: Iterator[int]) -> list[_Pending]:
    indices = sorted((i for i, e in enumerate(events) if e.pending),
                     key=lambda i: (events[i].call, i))
    return [_Pending(index, 1 << n, events[index].call, events[index], next(fresh_conns))
            for n, index in enumerate(indices)]


def _fresh_conns(events: tuple[Event, ...]) -> Iterator[int]:
    """Connection ids no event names: for connections that were made but never seen."""
    return itertools.count(min([0, *(e.conn for e in events if e.conn is not None)]) - 1, -1)


def _place(low: int, rest: int, rank: int) -> tuple[int, int]:
    """Add ``rank`` to the set of placed model calls of completed events, as (low, rest).

    Every rank below ``low`` is placed and bit k of ``rest`` says whether ``low + k`` is:
    a canonical form (bit 0 of ``rest`` is always clear) that stays a few bits wide,
    since calls are placed roughly in call order. A plain bitset would copy n bits per
    step and per memo entry.
    """
    rest |= 1 << (rank - low)
    if rank == low:
        ones = (rest ^ (rest + 1)).bit_length() - 1  # trailing ones: now placed below
        rest >>= ones
        low += ones
    return low, rest


class _Frame:
    """One placed call, and what to restore when the search takes it back."""

    __slots__ = ("call", "choice", "entry", "limit", "low", "parent", "pbits", "pending",
                 "rest", "state")

    def __init__(self, parent: _Frame | None, entry: _Entry | None, pending: int, choice: int,
                 call: model.Call | None, state: model.State, low: int, rest: int, pbits: int,
                 limit: _Entry | None) -> None:
        self.parent = parent
        self.entry = entry  # the entry of the call placed, or None for a pending one
        self.pending = pending  # for a pending call: its position in the pending list,
        self.choice = choice  # which of its outcomes,
        self.call = call  # that outcome,
        self.limit = limit  # and the first return entry when it was placed
        self.state = state  # before the call
        self.low, self.rest, self.pbits = low, rest, pbits


class _OutOfBudget(Exception):
    pass


def check(history: History, budget_steps: int = DEFAULT_BUDGET) -> Result:
    """Decide whether ``history`` is linearizable, within ``budget_steps`` model steps.

    The search makes many small objects and no reference cycles, so the cyclic garbage
    collector is paused meanwhile: with it, long histories took twice as long or more.
    """
    if budget_steps < 0:
        raise ValueError(f"budget_steps must be >= 0, not {budget_steps}")
    validate(history)
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Search(history, budget_steps).run()
    finally:
        if collecting:
            gc.enable()


class _Search:
    """The search's position: what is placed, the model state, and where to look next."""

    def __init__(self, history: History, budget: int) -> None:
        self.history = history
        self.budget = budget
        self.steps = 0
        fresh_conns = _fresh_conns(history.events)
        calls = _model_calls(history.events, fresh_conns)
        self.head = _link(calls, history.events)
        self.pending = _pending_calls(history.events, fresh_conns)
        self.completed = len(calls)  # model calls to place: then the search has succeeded
        # how many unplaced calls name each connection: at 0 the model may forget it
        self.uses = Counter(call.conn for _, call in calls if call.conn is not None)
        self.uses.update(p.conn for p in self.pending if p.conn is not None)
        self.memo: set[tuple[int, int, int, model.State]] = set()
        # what is placed: completed calls as (low, rest) (see _place), pending ones as bits
        self.state = model.initial(history.pool.maxsize, history.pool.block)
        self.low = self.rest = self.pbits = 0
        self.top: _Frame | None = None
        self.depth = self.placed = 0
        # where to look next: completed calls from `cursor`, or pending ones from
        # `next_pending`/`choice` while `limit` (the first return entry) allows them
        self.scanning = True
        self.cursor = self.head.next
        self.limit: _Entry | None = None
        self.next_pending = self.choice = 0
        # the deepest dead end so far: its frame, the state there, its first return entry
        self.best: _Frame | None = None
        self.best_depth = -1
        self.best_state = self.state
        self.best_limit: _Entry | None = None

    def run(self) -> Result:
        try:
            while self.placed < self.completed:
                if not (self._place_completed() or self._place_pending() or self._backtrack()):
                    return self._not_linearizable()
        except _OutOfBudget:
            return self._undecided()
        return self._result(LINEARIZABLE, self.top, self.state)

    def _place_completed(self) -> bool:
        """Place the first completed call that may come next and that the model accepts."""
        if not self.scanning:
            return False
        entry = self.cursor
        while entry is not None and not entry.is_return:
            after = self._try(entry.call, entry.conn, *_place(self.low, self.rest, entry.rank),
                              self.pbits)
            if after is not None:
                _lift(entry)
                self._push(_Frame(self.top, entry, -1, 0, None, self.state, self.low,
                                  self.rest, self.pbits, None), after, entry.conn)
                self.low, self.rest = _place(self.low, self.rest, entry.rank)
                self.placed += 1
                return True
            entry = entry.next
        self.scanning, self.limit, self.next_pending, self.choice = False, entry, 0, 0
        return False

    def _place_pending(self) -> bool:
        """Give the next pending call that may come now an outcome the model accepts."""
        horizon = math.inf if self.limit is None else self.limit.time
        pending = self.pending
        while self.next_pending < len(pending) and pending[self.next_pending].time <= horizon:
            candidate = pending[self.next_pending]
            if not self.pbits & candidate.bit:
                outcomes = candidate.candidates(self.state)
                while self.choice < len(outcomes):
                    outcome = outcomes[self.choice]
                    pbits = self.pbits | candidate.bit
                    after = self._try(outcome, candidate.conn, self.low, self.rest, pbits)
                    if after is not None:
                        self._push(_Frame(self.top, None, self.next_pending, self.choice,
                                          outcome, self.state, self.low, self.rest,
                                          self.pbits, self.limit), after, candidate.conn)
                        self.pbits = pbits
                        return True
                    self.choice += 1
            self.next_pending, self.choice = self.next_pending + 1, 0
        return False

    def _try(self, call: model.Call, conn: int | None, low: int, rest: int,
             pbits: int) -> model.State | None:
        """The state after ``call`` if the model accepts it here and it is a new situation."""
        if self.steps >= self.budget:
            raise _OutOfBudget
        self.steps += 1
        after = model.step(self.state, call)
        if isinstance(after, model.Rejected):
            return None
        if conn is not None and self.uses[conn] == 1:  # the last call to name conn
            after = model.forget(after, conn)
        size = len(self.memo)
        self.memo.add((low, rest, pbits, after))
        return after if len(self.memo) > size else None

    def _push(self, frame: _Frame, after: model.State, conn: int | None) -> None:
        self.top, self.state = frame, after
        self.depth += 1
        if conn is not None:
            self.uses[conn] -= 1
        self.scanning, self.cursor = True, self.head.next

    def _backtrack(self) -> bool:
        """Take back the last call placed, to try what comes after it; False if none."""
        if self.depth > self.best_depth:
            self.best, self.best_depth = self.top, self.depth
            self.best_state, self.best_limit = self.state, self.limit
        frame = self.top
        if frame is None:
            return False
        self.top = frame.parent
        self.depth -= 1
        self.state, self.low, self.rest, self.pbits = (
            frame.state, frame.low, frame.rest, frame.pbits)
        if frame.entry is not None:
            _unlift(frame.entry)
            self.placed -= 1
            self.scanning, self.cursor = True, frame.entry.next
            conn = frame.entry.conn
        else:
            self.scanning, self.limit = False, frame.limit
            self.next_pending, self.choice = frame.pending, frame.choice + 1
            conn = self.pending[frame.pending].conn
        if conn is not None:
            self.uses[conn] += 1
        return True

    # -- results -------------------------------------------------------------------------

    def _path(self, top: _Frame | None) -> tuple[tuple[int, ...], dict[int, model.Call]]:
        order: list[int] = []
        effects: dict[int, model.Call] = {}
        frame = top
        while frame is not None:
            if frame.entry is not None:
                order.append(frame.entry.index)
            else:
                index = self.pending[frame.pending].index
                order.append(index)
                assert frame.call is not None
                effects[index] = frame.call
            frame = frame.parent
        order.reverse()
        return tuple(dict.fromkeys(order)), effects  # an event of two calls shows once

    def _result(self, verdict: Verdict, top: _Frame | None, state: model.State,
                failed: int | None = None, reason: model.Rejected | None = None) -> Result:
        prefix, effects = self._path(top)
        return Result(verdict, prefix, state, failed, reason, effects, self.steps, self.budget)

    def _undecided(self) -> Result:
        if self.depth > self.best_depth:
            return self._result(UNDECIDED, self.top, self.state)
        return self._result(UNDECIDED, self.best, self.best_state)

    def _not_linearizable(self) -> Result:
        assert self.best_limit is not None, "a dead end always has a return entry ahead"
        failed = self.best_limit.index
        verdict = model.step(self.best_state, self.history.events[failed].model_call())
        reason = verdict if isinstance(verdict, model.Rejected) else None
        return self._result(NOT_LINEARIZABLE, self.best, self.best_state, failed, reason)
