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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from poolcheck.causes import Cause
from poolcheck.judge.steps import StepJudge
from poolcheck.load.targets import Target
from poolcheck.model import Invariant
from poolcheck.observe.facts import Step
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
    # hears every example's steps when it ends (maxsize, block, steps): the grader judges
    # them again in its own process
    on_example: Callable[[int, bool, list[Step]], None] | None = None


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
            self.judge = StepJudge(maxsize, block)  # the model, followed step by step
            self.trace: list[Step] = []  # what each step observed: the judge's only input
            self.held: list[RecordingConnection] = []
            self.steps: list[str] = []
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
                self._see(Step("construct", what, raised=f"{type(exc).__name__}: {exc}",
                               open_after=self._open()))
                return
            self._see(Step("construct", what, open_after=self._open()))

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

        def _see(self, step: Step) -> None:
            """Record what a step observed and let the judge decide: a violation of the
            invariant in focus fails the example, any other ends it quietly."""
            self.trace.append(step)
            verdict = self.judge.observe(step)
            if verdict is None:
                return
            self.derailed = True  # teardown must not pile a second failure on this one
            if focus in (verdict.invariant, ANY):
                raise Violation(verdict.invariant, verdict.message, verdict.cause)
            raise _Derailed()

        def _open(self) -> tuple[int, ...]:
            return tuple(c.id for c in self.factory.open_connections())

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
                self._note(type(exc).__name__)
                self._see(Step("get", self.steps[-1],
                               outcome=contract_error(exc, self.factory) or "",
                               raised=f"{type(exc).__name__}: {exc}",
                               not_implemented=isinstance(exc, NotImplementedError),
                               timeout=effective, elapsed=elapsed, open_after=self._open()))
                return
            if not self.factory.owns(conn):
                self._note(repr(conn))
                swallowed = self.factory.raised[raised_before:]
                self._see(Step("get", self.steps[-1], foreign=repr(conn),
                               swallowed=type(swallowed[0]).__name__ if swallowed else "",
                               open_after=self._open()))
                return
            self._note(f"#{conn.id}")
            session.handed_out += 1
            self._see(Step("get", self.steps[-1], conn=conn.id, was_closed=conn.closed,
                           open_after=self._open()))
            self.held.append(conn)

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
            exc = self._call_quietly(lambda: self.pool.put_conn(conn), f"put_conn(#{conn.id})")
            if exc is None:
                self._note("closed it" if conn.closed else "kept it")
            self._see(Step("put", self.steps[-1], conn=conn.id, kept=not conn.closed,
                           open_after=self._open(), **_raised(exc)))

        @precondition(lambda self: self.held)
        @rule(index=st.integers(0, 7))
        def put_none_after_broken(self, index: int) -> None:
            if self.derailed:
                return
            conn = self.held.pop(index % len(self.held))
            conn.close()

            def give_back() -> None:
                exc = self._call_quietly(lambda: self.pool.put_conn(None),
                                         f"#{conn.id} broke; put_conn(None)")
                self._see(Step("discard", self.steps[-1], conn=conn.id,
                               open_after=self._open(), **_raised(exc)))

            self._guard(give_back)

        @precondition(lambda self: target.has_close)
        @rule()
        def close(self) -> None:
            if not self.derailed:
                self._guard(self._close)

        def _close(self) -> None:
            exc = self._call_quietly(self.pool.close, "close()")
            self._see(Step("close", self.steps[-1], open_after=self._open(), **_raised(exc)))

        @rule(kind=st.sampled_from([ConnectFailed, Interrupted]))
        def factory_fails_next(self, kind: type[BaseException]) -> None:
            if not self.derailed:
                self.factory.fail_next = 1
                self.factory.fail_with = kind
                self.steps.append(f"(the factory will raise {kind.__name__} on its next call)")
                self._guard(lambda: self._see(Step("arm", self.steps[-1], arm=kind.__name__)))

        def _call_quietly(self, fn: Any, what: str) -> BaseException | None:
            """What ``fn`` raised, if anything (a hang derails the example)."""
            try:
                self._call(fn, what)
            except _Derailed:
                raise
            except BaseException as exc:
                self._note(type(exc).__name__)
                return exc
            return None

        def _guard(self, fn: Any) -> None:
            with contextlib.suppress(_Derailed):
                fn()

        # -- between steps ----------------------------------------------------------------

        @invariant()
        def between_steps(self) -> None:
            """What is checked out stays open (the pool closes a checked-out connection
            when it comes back, never before), and nothing open is lost."""
            if not self.derailed:
                self._guard(lambda: self._see(Step("state", open_after=self._open())))

        def teardown(self) -> None:
            try:
                self._guard(self._final_checks)
            finally:
                if session.on_example is not None and self.trace:
                    session.on_example(maxsize, block, self.trace)

        def _final_checks(self) -> None:
            if self.derailed or self.pool is None:
                return
            while self.held:  # give everything back, then prove every slot still works
                self._put(self.held.pop())
            if block and not self.judge.state.closed:
                for _ in range(maxsize):
                    self._get(SHORT_TIMEOUT)
                while self.held:
                    self._put(self.held.pop())
            if not target.has_close:
                return
            self._close()
            self._get(0.0)
            self._see(Step("final", open_after=self._open()))

    PoolMachine.__name__ = PoolMachine.__qualname__ = (
        f"{target.cls.__name__}_maxsize{maxsize}_{'block' if block else 'nonblock'}")
    return PoolMachine


def _raised(exc: BaseException | None) -> dict[str, Any]:
    """A step's facts about what a call raised."""
    if exc is None:
        return {}
    return {"raised": f"{type(exc).__name__}: {exc}",
            "not_implemented": isinstance(exc, NotImplementedError)}


class _Derailed(Exception):
    """The example can no longer be judged (hang, or another invariant broke): stop it."""
