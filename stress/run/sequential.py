"""The sequential check: a Hypothesis state machine drives the pool and the model side by side.

Each run focuses on one invariant: an outcome the model rejects for that invariant fails
the run (and Hypothesis shrinks it to the smallest program); one rejected for another
invariant just ends that example quietly, since the model can no longer follow the pool.
A call that hangs is never shrunk (each attempt would cost a watchdog period): it is
recorded once in the ``Session`` and reported by the ``deadlock-free`` check.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from poolcheck import model
from poolcheck.causes import Cause
from poolcheck.judge.judges import timing_fault
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.recording import (
    ConnectFailed,
    Interrupted,
    RecordingConnection,
    RecordingFactory,
    contract_error,
)
from poolcheck.observe.watchdog import Hung, Watchdog
from poolcheck.settings import CALL_LIMIT

SHORT_TIMEOUT = 0.005
GET_TIMEOUTS = (None, 0.0, SHORT_TIMEOUT)  # what get_conn is called with (None: the pool's)
ANY = "*"  # focus on every invariant at once: the first violation fails the run


class Violation(AssertionError):
    """The pool broke ``invariant``; the message says how, with the steps that led there."""

    def __init__(self, invariant: Invariant, message: str, cause: Cause | None = None) -> None:
        super().__init__(f"[{invariant}] {message}")
        self.invariant = invariant
        self.message = message
        self.cause = cause


@dataclass
class HangReport:
    what: str
    steps: list[str]
    stack: str
    invariants: set[Invariant]  # timeout if it waited past it, else deadlock-free

    def describe(self, happened: str, call: str) -> str:
        """``what`` ``happened``, the last steps and the stack of the ``call``."""
        steps = "\n".join(f"  {s}" for s in self.steps[-12:])
        return (f"{self.what} {happened} (no return within the watchdog period)\n"
                f"steps:\n{steps}\nstack of the {call} call:\n{self.stack}")


@dataclass
class Session:
    """What one `poolcheck check` run learns across checks.

    A get_conn that waits past its own timeout is a timeout violation, not a reason to stop:
    it is kept in ``slow_get``, and later machines no longer draw that timeout (``avoid``),
    so the other checks still reach a verdict. Any other hang stops the session (``hang``).
    """

    hang: HangReport | None = None
    slow_get: HangReport | None = None
    avoid: tuple[float | None, ...] = ()  # get_conn timeouts a slow get made us stop drawing
    handed_out: int = 0  # successful get_conn calls: a check with none tested nothing


def machine_for(target: Target, maxsize: int, block: bool, focus: str,
                session: Session, watchdog: Watchdog) -> type[RuleBasedStateMachine]:
    # block=True: the pool's own timeout is short and finite, so get_conn(timeout=None)
    # (which must use it) is checked for timing like any other get
    pool_timeout = SHORT_TIMEOUT if block else None
    avoided = session.avoid
    timeouts = [t for t in GET_TIMEOUTS if t not in avoided]

    class PoolMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.factory = RecordingFactory()
            self.state = model.initial(maxsize, block)
            self.held: list[RecordingConnection] = []
            self.steps: list[str] = []
            # what this program did that can leak a slot, in the order the explanation
            # prefers: a capacity violation names the first of these the program did
            self.slot_risks: set[Cause] = set()
            # a machine drawn before a slow get changed `avoid` would only hang again
            self.derailed = session.hang is not None or session.avoid != avoided
            self.pool: Any = None
            if not self.derailed:
                self._guard(self._construct)

        def _construct(self) -> None:
            what = (f"{target.cls.__name__}(maxsize={maxsize}, block={block}"
                    + (f", timeout={pool_timeout})" if pool_timeout is not None else ")"))
            try:
                self.pool = self._call(
                    lambda: target.make(maxsize, block, pool_timeout, self.factory), what)
            except _Derailed:
                raise
            except Exception as exc:
                self._violated(Invariant.ERRORS, f"{what} raised {type(exc).__name__}: {exc}")

        # -- plumbing ---------------------------------------------------------------------

        def _call(self, fn: Any, what: str, limit: float = CALL_LIMIT,
                  timed: bool = False, get_timeout: float | None = None) -> Any:
            """``fn`` under the watchdog; ``timed``: a get_conn called with ``get_timeout``
            that should give up in time (only then is ``get_timeout`` read)."""
            self.steps.append(what)
            try:
                return watchdog.call(fn, limit, what)
            except Hung as hung:
                # waiting, past its own timeout: explained by the timeout, not a deadlock
                slow = timed and hung.waiting
                report = HangReport(what, list(self.steps), hung.stack,
                                    {Invariant.TIMEOUT} if slow else {Invariant.DEADLOCK_FREE})
                if slow and len(session.avoid) < len(GET_TIMEOUTS) - 1:  # keep one to draw
                    session.slow_get = session.slow_get or report
                    session.avoid = (*session.avoid, get_timeout)
                elif session.hang is None:
                    session.hang = report
                self.derailed = True
                raise _Derailed() from None

        def _violated(self, invariant: Invariant, message: str,
                      cause: Cause | None = None) -> None:
            if focus in (invariant, ANY):
                self.derailed = True  # teardown must not pile a second failure on this one
                if cause is None and invariant == Invariant.CAPACITY:
                    cause = next((c for c in SLOT_RISKS if c in self.slot_risks), None)
                raise Violation(invariant, message + self._trail(), cause)
            self.derailed = True
            raise _Derailed()

        def _trail(self) -> str:
            last = self.steps[-12:]
            skipped = len(self.steps) - len(last)
            lines = ([f"  ... {skipped} earlier steps"] if skipped else []) + [
                f"  {s}" for s in last]
            return "\nsteps, each call and what it gave (maxsize={}, block={}):\n{}".format(
                maxsize, block, "\n".join(lines))

        def _apply(self, call: model.Call) -> None:
            result = model.step(self.state, call)
            if isinstance(result, model.Rejected):
                self._violated(result.invariant, result.reason)
            else:
                self.state = result

        def _note(self, text: str) -> None:
            self.steps[-1] += f" -> {text}"

        # -- rules ------------------------------------------------------------------------

        def _get(self, timeout: float | None) -> None:
            started = time.monotonic()
            raised_before = len(self.factory.raised)
            effective = pool_timeout if timeout is None else timeout
            label = f"get_conn(timeout={timeout})" + (
                f" [the pool's timeout: {pool_timeout} s]"
                if timeout is None and pool_timeout is not None else "")
            try:
                conn = self._call(lambda: self.pool.get_conn(timeout=timeout), label,
                                  CALL_LIMIT + (effective or 0), timed=effective is not None,
                                  get_timeout=timeout)
            except _Derailed:
                raise
            except BaseException as exc:
                elapsed = time.monotonic() - started
                kind = contract_error(exc, self.factory)
                self._note(type(exc).__name__)
                if kind is None:
                    self._violated(Invariant.ERRORS, f"get_conn raised {type(exc).__name__}: {exc}",
                                   _not_implemented(exc))
                    return
                if kind == model.EMPTY and block:  # block=False: the model rejects it
                    self._check_timing(effective, elapsed)
                self._apply(model.Call("get", outcome=kind))
                return
            if not self.factory.owns(conn):
                self._note(repr(conn))
                swallowed = self.factory.raised[raised_before:]
                self._violated(Invariant.ERRORS, f"get_conn returned {conn!r}, which its "
                               "connection_factory did not make" + (
                                   f" (the factory had raised {type(swallowed[0]).__name__} "
                                   "in this call: what the factory raises must propagate)"
                                   if swallowed else ""))
            self._note(f"#{conn.id}")
            session.handed_out += 1
            if conn.closed:
                self._violated(Invariant.CLOSED, f"get_conn handed out connection #{conn.id}, "
                                         "which the pool had closed")
            self._apply(model.Call("get", conn.id))
            self.held.append(conn)

        def _check_timing(self, timeout: float | None, elapsed: float) -> None:
            fault = timing_fault(timeout, elapsed)
            if fault:
                self._violated(fault.invariant, fault.message, fault.cause)

        # block=True gets always have a finite timeout (None: the pool's): a pool that lost
        # a slot then raises EmptyPoolError (a capacity violation the model names) instead
        # of hanging.
        @rule(timeout=st.sampled_from(timeouts))
        def get(self, timeout: float | None) -> None:
            if not self.derailed:
                self._guard(lambda: self._get(timeout))

        # A hang changes what later rules may do, so Hypothesis may find its replays
        # drawing differently (Flaky): `checks` then reports the hang instead.
        @precondition(lambda self: self.held)
        @rule(index=st.integers(0, 7))
        def put(self, index: int) -> None:
            if not self.derailed:
                self._guard(lambda: self._put(self.held.pop(index % len(self.held))))

        def _put(self, conn: RecordingConnection) -> None:
            self._call_quietly(lambda: self.pool.put_conn(conn), f"put_conn(#{conn.id})")
            self._note("closed it" if conn.closed else "kept it")
            self._apply(model.Call("put", conn.id, kept=not conn.closed))

        @precondition(lambda self: self.held)
        @rule(index=st.integers(0, 7))
        def put_none_after_broken(self, index: int) -> None:
            if self.derailed:
                return
            conn = self.held.pop(index % len(self.held))
            conn.close()
            self.slot_risks.add(Cause.LEAK_ON_PUT_NONE)

            def give_back() -> None:
                self._call_quietly(lambda: self.pool.put_conn(None),
                                   f"#{conn.id} broke; put_conn(None)")
                self._apply(model.Call("discard", conn.id))

            self._guard(give_back)

        @precondition(lambda self: target.has_close)
        @rule()
        def close(self) -> None:
            if not self.derailed:
                self._guard(self._close)

        def _close(self) -> None:
            idle = self.state.idle
            self._call_quietly(self.pool.close, "close()")
            self._apply(model.Call("close"))
            left_open = sorted(c.id for c in self.factory.created if c.id in idle and not c.closed)
            if left_open:
                self._violated(Invariant.NO_LEAK, "close() left idle connection(s) "
                               f"{', '.join(f'#{i}' for i in left_open)} open",
                               Cause.CLOSE_LEFT_IDLE_OPEN)

        @rule(kind=st.sampled_from([ConnectFailed, Interrupted]))
        def factory_fails_next(self, kind: type[BaseException]) -> None:
            if not self.derailed:
                self.factory.fail_next = 1
                self.factory.fail_with = kind
                self.slot_risks.add(Cause.LEAK_ON_BASEEXCEPTION if kind is Interrupted
                                    else Cause.LEAK_ON_FACTORY_ERROR)
                self.steps.append(f"(the factory will raise {kind.__name__} on its next call)")

        def _call_quietly(self, fn: Any, what: str) -> None:
            try:
                self._call(fn, what)
            except _Derailed:
                raise
            except BaseException as exc:
                self._note(type(exc).__name__)
                self._violated(Invariant.ERRORS, f"{what} raised {type(exc).__name__}: {exc}",
                               _not_implemented(exc))

        def _guard(self, fn: Any) -> None:
            with contextlib.suppress(_Derailed):
                fn()

        # -- invariants -------------------------------------------------------------------

        @invariant()
        def held_stay_open(self) -> None:
            """The pool closes a checked-out connection when it comes back, never before."""
            shut = [c.id for c in self.held if c.closed]
            if shut and not self.derailed:
                which = Invariant.CLOSED if self.state.closed else Invariant.EXCLUSIVE
                self._guard(lambda: self._violated(
                    which, "the pool closed connection(s) {} while the caller still held "
                    "them{}".format(", ".join(f"#{i}" for i in shut),
                                    " (close() must close them when they are returned)"
                                    if self.state.closed else ""), Cause.CLOSED_WHILE_HELD))

        @invariant()
        def nothing_lost(self) -> None:
            if self.derailed:
                return
            held = {c.id for c in self.held}
            open_ids = [c.id for c in self.factory.open_connections()]
            if block and len(open_ids) > maxsize:
                self._guard(lambda: self._violated(
                    Invariant.BOUND, f"{len(open_ids)} connections are open (maxsize {maxsize})"))
                return
            lost = [i for i in open_ids if i not in held and i not in self.state.idle]
            if lost:
                self._guard(lambda: self._violated(
                    Invariant.NO_LEAK, "connection(s) {} are open but neither checked out nor "
                    "idle in the pool".format(", ".join(f"#{i}" for i in lost))))

        def teardown(self) -> None:
            self._guard(self._final_checks)

        def _final_checks(self) -> None:
            if self.derailed or self.pool is None:
                return
            while self.held:  # give everything back, then prove every slot still works
                self._put(self.held.pop())
            if block and not self.state.closed:
                for _ in range(maxsize):
                    self._get(SHORT_TIMEOUT)
                while self.held:
                    self._put(self.held.pop())
            if not target.has_close:
                return
            self._close()
            self._get(0.0)
            if self.held:
                return
            still_open = [c.id for c in self.factory.open_connections()]
            if still_open:
                self._violated(Invariant.NO_LEAK, "after close() and every return, connection(s) "
                               f"{', '.join(f'#{i}' for i in still_open)} are still open")

    PoolMachine.__name__ = PoolMachine.__qualname__ = (
        f"{target.cls.__name__}_maxsize{maxsize}_{'block' if block else 'nonblock'}")
    return PoolMachine


SLOT_RISKS = (Cause.LEAK_ON_BASEEXCEPTION, Cause.LEAK_ON_FACTORY_ERROR, Cause.LEAK_ON_PUT_NONE)


def _not_implemented(exc: BaseException) -> Cause | None:
    return Cause.NOT_IMPLEMENTED if isinstance(exc, NotImplementedError) else None


class _Derailed(Exception):
    """The example can no longer be judged (hang, or another invariant broke): stop it."""
