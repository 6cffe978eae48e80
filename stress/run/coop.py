"""A controlled scheduler, and cooperative primitives that hand it every switch.

Managed threads are real OS threads, but only one of them runs at a time: each waits on
its own real semaphore until the thread that holds the baton hands it over. The holder
decides who runs next at every *switch point*: each ``line`` event in the target's own
source files, and each operation on the cooperative primitives below. A ``Chooser``
makes each decision that has more than one option; the list of those decisions is the
schedule, and replaying it replays the run exactly.

The cooperative ``Lock``, ``RLock``, ``Condition``, ``Semaphore``, ``BoundedSemaphore``,
``Event``, ``Queue``, ``LifoQueue`` and ``PriorityQueue`` block by telling the scheduler
what they wait for (a predicate, and a deadline on the virtual clock), never on a real
lock. The clock jumps when the scheduler picks a timed-out wake-up, so a 30 s timeout takes
microseconds, and creeps by ``CLOCK_READ`` at each read, so a pool that polls the clock
sees time pass. ``substituted(cls)`` puts them, and a virtual ``time``, into the modules
(and class attributes and default arguments) of the target class for the length of a run;
the checker keeps the real ones.

A run ends with a verdict (``deadlock``, ``livelock``) or without one (``hung``,
``unmanaged``, ``undecided``): the last three say the scheduler could not drive the pool,
never that the pool is wrong.
"""

from __future__ import annotations

import _thread
import heapq
import os
import queue
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

_real_monotonic = time.monotonic
_real_time = time.time
_real_sleep = time.sleep
_real_perf_counter = time.perf_counter

CLOCK_START = 1000.0  # virtual time.monotonic() when a run begins
EPOCH = 1_700_000_000.0  # virtual time.time() is EPOCH + monotonic()
STALL = 5.0  # real seconds without a switch point: a thread blocks outside our control
TRAIL = 400  # switch points kept for the report
CLOCK_READ = 1e-3  # virtual seconds each clock read by a managed thread lets pass
HORIZON = 100.0  # virtual seconds after which a run that goes on is stuck (see Scheduler)
STEP_CAP = 50  # x budget: switch points in all before a run that keeps time moving is given up


class Abort(BaseException):
    """Raised in a managed thread to unwind it when the run is over (never caught by us
    inside the target's frames; a BaseException, so ``except Exception`` lets it pass)."""


ABORTED = Abort.__name__  # the outcome recorded for a call cut short when a run is stopped


class Option(NamedTuple):
    """One choice at a switch point: run ``thread`` (waking it by timeout if ``timed``;
    raising its armed exception where it waits if ``interrupt``)."""

    thread: int
    timed: bool
    deadline: float | None
    interrupt: bool = False


class Chooser(Protocol):
    def choose(self, options: Sequence[Option], current: int | None, step: int) -> int:
        """The index of the option to take.

        ``options[0]`` is ``current`` whenever it is an option: it goes on, or, if it is
        blocked with a deadline, it is woken by its timeout.
        """


class Point(NamedTuple):
    """One switch point, for the report."""

    step: int
    thread: int
    where: str
    what: str
    op: str


@dataclass(eq=False)
class Managed:
    index: int
    sched: Scheduler
    sem: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    state: str = "ready"  # ready | blocked | done
    pred: Callable[[], bool] | None = None
    deadline: float | None = None
    what: str = ""
    ident: int | None = None
    # an exception it may be interrupted with while it waits (arm_interrupt), and whether
    # the scheduler chose to deliver it: at most once per arming
    armed: BaseException | None = None
    deliver: bool = False
    shielded: bool = False  # in a wait no interrupt is delivered in (see Condition.wait)


_local = threading.local()
# The scheduler of the run under way. One run at a time per process (the module swap is
# process-wide); a list so that an unmanaged thread can find it without a lock.
_ACTIVE: list[Scheduler] = []


def _me() -> Managed | None:
    return getattr(_local, "thread", None)


def where(frame: types.FrameType | None) -> str:
    if frame is None:
        return "?"
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


class Scheduler:
    """One controlled run: managed threads, the virtual clock, the decisions made."""

    def __init__(self, chooser: Chooser, files: frozenset[str], budget: int,
                 op_of: Callable[[int], str] = lambda thread: "",
                 stall: float = STALL, horizon: float = HORIZON) -> None:
        self.chooser = chooser
        self.files = files
        self.budget = budget
        self.op_of = op_of
        self.stall = stall
        self.horizon = horizon  # far more virtual time than the program's timeouts add up to
        self.now = CLOCK_START
        self.steps = 0
        self.progress_at = 0  # the step at which virtual time last moved
        self.threads: list[Managed] = []
        self.decisions: list[tuple[int, int, bool]] = []  # (options, chosen, current could go on)
        self.trail: deque[Point] = deque(maxlen=TRAIL)
        # (deadlock | livelock | hung | unmanaged | undecided, report)
        self.outcome: tuple[str, str] | None = None
        self.crashes: list[tuple[int, BaseException]] = []
        self.aborting = False
        self._finished = threading.Event()

    # -- the controller side (the thread that calls run) -------------------------------

    def run(self, bodies: Sequence[tuple[int, Callable[[], None]]]) -> None:
        """Run the bodies as managed threads until all are done or the run is stopped."""
        if self.aborting or not bodies:
            return
        self._finished = threading.Event()
        started = threading.Semaphore(0)
        managed = [Managed(index, self) for index, _ in bodies]
        self.threads.extend(managed)
        real = [threading.Thread(target=self._body, args=(m, body, started), daemon=True,
                                 name=f"poolcheck-controlled-{m.index}")
                for m, (_, body) in zip(managed, bodies, strict=True)]
        _ACTIVE.append(self)
        try:
            for t in real:
                t.start()
            for _ in real:
                started.acquire()
            first = self._next(None)
            assert first is not None
            first.sem.release()
            seen, since = self.steps, _real_monotonic()
            while not self._finished.wait(0.05):
                if self.steps != seen:
                    seen, since = self.steps, _real_monotonic()
                elif _real_monotonic() - since > self.stall:
                    self._stop("hung", f"no switch point for {self.stall:g} s: a thread "
                               "blocks or loops outside the scheduler's control (a real lock, "
                               "a socket, a thread the pool started?)\n" + self.positions())
                    break
            for t in real:
                t.join(1.0 if self.aborting else None)
        finally:
            if not self._finished.is_set():  # interrupted (KeyboardInterrupt): unwind them
                self._stop("hung", "the run was interrupted")
            _ACTIVE.remove(self)

    def _body(self, m: Managed, body: Callable[[], None], started: threading.Semaphore) -> None:
        _local.thread = m
        m.ident = threading.get_ident()
        started.release()
        m.sem.acquire()
        try:
            if self.aborting:
                return
            sys.settrace(self._tracer_for(m))
            try:
                body()
            finally:
                sys.settrace(None)
        except Abort:
            pass
        except BaseException as exc:
            self.crashes.append((m.index, exc))
        finally:
            _local.thread = None
            self._finish(m)

    def _tracer_for(self, m: Managed) -> Any:
        files = self.files

        def on_line(frame: types.FrameType, event: str, arg: object) -> Any:
            if event == "line":
                self.switch(m, "line", frame)
            return on_line

        def on_call(frame: types.FrameType, event: str, arg: object) -> Any:
            return on_line if frame.f_code.co_filename in files else None

        return on_call

    # -- the managed side (the thread that holds the baton) ----------------------------

    def switch(self, m: Managed, what: str, frame: types.FrameType | None = None) -> None:
        """A switch point: ``m`` can go on, but another thread may run first."""
        if self.aborting:
            raise Abort
        self._tick(m, what, frame)
        nxt = self._next(m)
        if nxt is not m:
            assert nxt is not None  # m itself is an option
            self._hand(m, nxt)

    def block(self, m: Managed, pred: Callable[[], bool], deadline: float | None,
              what: str) -> bool:
        """``m`` waits until ``pred()`` (True) or the virtual ``deadline`` (False)."""
        if self.aborting:
            raise Abort
        m.state, m.pred, m.deadline, m.what = "blocked", pred, deadline, what
        self._tick(m, what, None)
        nxt = self._next(m)
        if nxt is None:
            self._stop("deadlock", "every thread waits, and none has a deadline:\n"
                       + self.positions())
            raise Abort
        if nxt is not m:
            self._hand(m, nxt)
        m.state, m.pred, m.deadline = "ready", None, None
        if m.deliver:
            exc, m.armed, m.deliver = m.armed, None, False
            assert exc is not None
            raise exc  # where it waits, as a signal's exception or a gevent Timeout would be
        return pred()

    def _finish(self, m: Managed) -> None:
        m.state = "done"
        if self.aborting:
            return
        nxt = self._next(None)
        if nxt is not None:
            nxt.sem.release()
        elif any(t.state != "done" for t in self.threads):
            self._stop("deadlock", f"thread {m.index} finished; every other thread waits, "
                       "and none has a deadline:\n" + self.positions())
        else:
            self._finished.set()

    def _hand(self, m: Managed, nxt: Managed) -> None:
        nxt.sem.release()
        m.sem.acquire()
        if self.aborting:
            raise Abort

    def _tick(self, m: Managed, what: str, frame: types.FrameType | None) -> None:
        self.steps += 1
        if frame is None:
            frame = self._pool_frame()
        self.trail.append(Point(self.steps, m.index, where(frame), what, self.op_of(m.index)))
        stuck = self._stuck()
        if stuck is not None:
            self._stop(*stuck)
            raise Abort

    def _stuck(self) -> tuple[str, str] | None:
        """A run that cannot end: spinning while virtual time stands still, or time running
        past any timeout the program has; past STEP_CAP x budget, no verdict at all."""
        if self.steps - self.progress_at > self.budget:
            return ("livelock", f"{self.budget} switch points without virtual time passing: "
                    "a thread spins without waiting (a livelock)\n" + self.positions())
        if self.now - CLOCK_START > self.horizon:
            return ("livelock", f"{self.horizon:g} virtual seconds and the run goes on, far "
                    "past the timeouts of its calls\n" + self.positions())
        if self.steps > STEP_CAP * self.budget:
            return ("undecided", f"more than {STEP_CAP * self.budget} switch points while "
                    "virtual time passes: the program is too long for the budget")
        return None

    def advance(self, to: float) -> None:
        """Move the virtual clock forward (never back)."""
        if to > self.now:
            self.now = to
            self.progress_at = self.steps

    def unmanaged(self, what: str) -> None:
        """A thread the scheduler does not run (one the pool started?) used a primitive:
        nothing it does is ordered with the managed threads, so the run has no verdict."""
        self._stop("unmanaged", f"{threading.current_thread().name}, a thread the scheduler "
                   f"does not manage (did the pool start it?), called {what}; threads the "
                   "pool starts itself are not supported by the controlled check")

    def _pool_frame(self) -> types.FrameType | None:
        frame: types.FrameType | None = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename not in self.files:
            frame = frame.f_back
        return frame

    def _enabled(self, t: Managed) -> bool:
        if t.state == "ready":
            return True
        if t.state != "blocked":
            return False
        assert t.pred is not None
        return t.pred() or (t.deadline is not None and t.deadline <= self.now)

    def _next(self, current: Managed | None) -> Managed | None:
        """Decide who runs next: current first (if it may go on), then by index."""
        order = [t for t in self.threads if t is not current and t.state != "done"]
        if current is not None and current.state != "done":
            order.insert(0, current)
        options: list[tuple[Managed, Option]] = []
        for t in order:
            if self._enabled(t):
                options.append((t, Option(t.index, False, None)))
            elif t.state == "blocked" and t.deadline is not None:
                options.append((t, Option(t.index, True, t.deadline)))
        # a waiter armed to be interrupted may be once it is woken, before it runs (the
        # wake-up it received is at stake), or when nothing else can happen (it would wait
        # for ever): last, so that option 0 stays "the current goes on"
        stuck = not options
        options += [(t, Option(t.index, False, None, True)) for t in order
                    if t.state == "blocked" and t.armed is not None and not t.shielded
                    and (stuck or self._enabled(t))]
        if not options:
            return None
        k = 0
        if len(options) > 1:
            k = self.chooser.choose([o for _, o in options],
                                    current.index if current is not None else None, self.steps)
            if not 0 <= k < len(options):
                k = 0
            can_go_on = current is not None and options[0][0] is current and not options[0][1].timed
            self.decisions.append((len(options), k, can_go_on))
        chosen, option = options[k]
        if option.timed and option.deadline is not None:
            self.advance(option.deadline)
        if option.interrupt:
            chosen.deliver = True
        return chosen

    def _stop(self, kind: str, message: str) -> None:
        if self.outcome is None:
            self.outcome = (kind, message)
        self.aborting = True
        for t in self.threads:
            t.sem.release()
        self._finished.set()

    def positions(self) -> str:
        """Where each live thread is: its frames in the target's files, and what it waits for."""
        frames = sys._current_frames()
        lines = []
        for t in self.threads:
            if t.state == "done":
                continue
            frame = frames.get(t.ident or -1)
            stack = []
            while frame is not None:
                if frame.f_code.co_filename in self.files:
                    stack.append(f"{where(frame)} in {frame.f_code.co_name}")
                frame = frame.f_back
            state = (f"waits in {t.what}" + ("" if t.deadline is None else
                                               f" (deadline {t.deadline - CLOCK_START:g} s)")
                     if t.state == "blocked" else "runnable")
            op = self.op_of(t.index)
            lines.append(f"  thread {t.index}{f' in {op}' if op else ''}: {state}")
            lines += [f"      at {s}" for s in reversed(stack)] or ["      (not in the pool)"]
        return "\n".join(lines)


# -- the cooperative primitives -------------------------------------------------------------


def arm_interrupt(exc: BaseException | None) -> None:
    """Let the scheduler deliver ``exc`` to the calling managed thread at one of its next
    waits (None: no more); outside a controlled run, nothing happens."""
    m = _me()
    if m is not None:
        m.armed, m.deliver = exc, False


@contextmanager
def _shielded(m: Managed | None) -> Iterator[None]:
    if m is None:
        yield
        return
    m.shielded = True
    try:
        yield
    finally:
        m.shielded = False


def _made_in() -> Scheduler | None:
    """The run a primitive is made in (None: made outside any run, e.g. at import)."""
    return _ACTIVE[-1] if _ACTIVE else None


def _op(what: str, owner: Scheduler | None) -> Managed | None:
    """Every operation is a switch point; outside a controlled run, nothing happens.

    A primitive made during a run that is over (``owner`` no longer active) is passive:
    a finalizer of an earlier run's pool (urllib3 registers one) may use it from any
    thread, and it must neither switch nor stop the run under way."""
    if owner is not None and (not _ACTIVE or owner is not _ACTIVE[-1]):
        return None
    m = _me()
    if m is not None:
        m.sched.switch(m, what)
    elif _ACTIVE and not _ACTIVE[-1].aborting:
        _ACTIVE[-1].unmanaged(what)
    return m


def _mine(owner: Scheduler | None) -> Managed | None:
    """The managed thread calling, as a primitive of ``owner``'s sees it (see _op)."""
    if owner is not None and (not _ACTIVE or owner is not _ACTIVE[-1]):
        return None
    return _me()


def _now() -> float:
    return _ACTIVE[-1].now if _ACTIVE else _real_monotonic()


def _wait(m: Managed | None, owner: Scheduler | None, pred: Callable[[], bool],
          timeout: float | None, what: str) -> bool:
    """Block until pred() (True) or timeout virtual seconds pass (False)."""
    if pred():
        return True
    if m is None:  # not a managed thread: nobody else can run to make pred true
        if timeout is not None:
            return False
        if owner is not None and owner not in _ACTIVE:
            # a primitive of a run that is over, used by a finalizer of its garbage, held
            # by a thread that run stopped: nothing will ever release it, and nothing of
            # that run matters any more
            return True
        raise RuntimeError(f"poolcheck: {what} would block for ever outside a controlled run")
    deadline = None if timeout is None else m.sched.now + max(0.0, timeout)
    return m.sched.block(m, pred, deadline, what)


def _holder(owner: Managed | None) -> str:
    return f"held by thread {owner.index}" if owner is not None else "held"


class Lock:
    def __init__(self) -> None:
        self._owner_run = _made_in()
        self._held = False
        self._owner: Managed | None = None

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        m = _op("Lock.acquire", self._owner_run)
        if self._held and not blocking:
            return False
        return self._take(m, None if timeout == -1 else timeout)

    def _take(self, m: Managed | None, timeout: float | None) -> bool:
        if self._held and not _wait(m, self._owner_run, lambda: not self._held, timeout,
                                    f"Lock.acquire ({_holder(self._owner)})"):
            return False
        self._held, self._owner = True, m
        return True

    def release(self) -> None:
        _op("Lock.release", self._owner_run)
        if not self._held:
            raise RuntimeError("release unlocked lock")
        self._held, self._owner = False, None

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._held  # as threading.Condition judges a plain lock

    def _release_save(self) -> Any:
        self._held, self._owner = False, None
        return None

    def _acquire_restore(self, saved: Any) -> None:
        self._take(_mine(self._owner_run), None)


class RLock:
    def __init__(self) -> None:
        self._owner_run = _made_in()
        self._owner: Managed | None = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        m = _op("RLock.acquire", self._owner_run)
        if self._count and self._owner is m:
            self._count += 1
            return True
        if self._count and not blocking:
            return False
        if self._count and not _wait(m, self._owner_run, lambda: self._count == 0,
                                     None if timeout == -1 else timeout,
                                     f"RLock.acquire ({_holder(self._owner)})"):
            return False
        self._owner, self._count = m, 1
        return True

    def release(self) -> None:
        m = _op("RLock.release", self._owner_run)
        if not self._count or self._owner is not m:
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return bool(self._count) and self._owner is _mine(self._owner_run)

    def _release_save(self) -> Any:
        saved = (self._count, self._owner)
        self._count, self._owner = 0, None
        return saved

    def _acquire_restore(self, saved: Any) -> None:
        m = _mine(self._owner_run)
        _wait(m, self._owner_run, lambda: self._count == 0, None,
              f"RLock.acquire ({_holder(self._owner)})")
        self._count, self._owner = saved[0], m


class _Waiter:
    notified = False


class Condition:
    """threading.Condition, down to its corner: a waiter that timed out stays a waiter until
    it has the lock again, and a notify() that reaches it then is spent on it."""

    def __init__(self, lock: Any = None) -> None:
        self._owner_run = _made_in()
        self._lock = lock if lock is not None else RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._waiters: list[_Waiter] = []
        # as threading.Condition does: the lock's own methods where it has them (ours do),
        # else the plain-lock fallbacks below (a real lock made before the swap: it blocks
        # for real, and the run ends as hung)
        for name in ("_is_owned", "_release_save", "_acquire_restore"):
            if hasattr(self._lock, name):
                setattr(self, name, getattr(self._lock, name))

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc_info: object) -> None:
        self._lock.__exit__(*exc_info)

    def _is_owned(self) -> bool:
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        self._lock.release()

    def _acquire_restore(self, saved: Any) -> None:
        self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        m = _op("Condition.wait", self._owner_run)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _Waiter()
        self._waiters.append(waiter)
        saved = self._release_save()
        notified = False
        try:
            notified = _wait(m, self._owner_run, lambda: waiter.notified, timeout,
                             "Condition.wait")
        finally:
            # not interrupted while it takes the lock back: an exception there would leave
            # the caller's `with` releasing a lock it does not hold (CPython's own wart,
            # which no pool can guard against)
            with _shielded(m):
                self._acquire_restore(saved)
            if waiter in self._waiters:  # timed out, and no notify reached it meanwhile
                self._waiters.remove(waiter)
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        endtime = None
        waittime = timeout
        result = predicate()
        while not result:
            if waittime is not None:
                if endtime is None:
                    endtime = _now() + waittime
                else:
                    waittime = endtime - _now()
                    if waittime <= 0:
                        break
            self.wait(waittime)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        _op("Condition.notify", self._owner_run)
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        n = max(0, n)
        woken, self._waiters = self._waiters[:n], self._waiters[n:]
        for waiter in woken:
            waiter.notified = True

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all  # the stdlib's old name


class Semaphore:
    def __init__(self, value: int = 1) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._owner_run = _made_in()
        self._value = value

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        m = _op(f"{type(self).__name__}.acquire", self._owner_run)
        if not self._value and not blocking:
            return False
        if not _wait(m, self._owner_run, lambda: self._value > 0, timeout,
                     f"{type(self).__name__}.acquire (no permit)"):
            return False
        self._value -= 1
        return True

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        _op(f"{type(self).__name__}.release", self._owner_run)
        self._value += n

    __enter__ = acquire

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        _op("BoundedSemaphore.release", self._owner_run)
        if self._value + n > self._initial_value:
            raise ValueError("Semaphore released too many times")
        self._value += n


class Event:
    """threading.Event; ``set()`` wakes every waiter even if ``clear()`` follows at once."""

    def __init__(self) -> None:
        self._owner_run = _made_in()
        self._flag = False
        self._sets = 0  # how many times set() was called: a waiter wakes when it changes

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set  # the stdlib's old name

    def set(self) -> None:
        _op("Event.set", self._owner_run)
        self._flag = True
        self._sets += 1

    def clear(self) -> None:
        _op("Event.clear", self._owner_run)
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        m = _op("Event.wait", self._owner_run)
        seen = self._sets
        return _wait(m, self._owner_run, lambda: self._flag or self._sets != seen, timeout,
                     "Event.wait")


class Queue:
    """queue.Queue on the cooperative Condition, with the stdlib's semantics."""

    def __init__(self, maxsize: int = 0) -> None:
        self.maxsize = maxsize
        self._init(maxsize)
        self.mutex = Lock()
        self.not_empty = Condition(self.mutex)
        self.not_full = Condition(self.mutex)
        self.all_tasks_done = Condition(self.mutex)
        self.unfinished_tasks = 0

    def task_done(self) -> None:
        with self.all_tasks_done:
            unfinished = self.unfinished_tasks - 1
            if unfinished <= 0:
                if unfinished < 0:
                    raise ValueError("task_done() called too many times")
                self.all_tasks_done.notify_all()
            self.unfinished_tasks = unfinished

    def join(self) -> None:
        with self.all_tasks_done:
            while self.unfinished_tasks:
                self.all_tasks_done.wait()

    def qsize(self) -> int:
        with self.mutex:
            return self._qsize()

    def empty(self) -> bool:
        with self.mutex:
            return not self._qsize()

    def full(self) -> bool:
        with self.mutex:
            return 0 < self.maxsize <= self._qsize()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self.not_full:
            if self.maxsize > 0:
                if not block:
                    if self._qsize() >= self.maxsize:
                        raise queue.Full
                elif timeout is None:
                    while self._qsize() >= self.maxsize:
                        self.not_full.wait()
                elif timeout < 0:
                    raise ValueError("'timeout' must be a non-negative number")
                else:
                    endtime = _now() + timeout
                    while self._qsize() >= self.maxsize:
                        remaining = endtime - _now()
                        if remaining <= 0.0:
                            raise queue.Full
                        self.not_full.wait(remaining)
            self._put(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self.not_empty:
            if not block:
                if not self._qsize():
                    raise queue.Empty
            elif timeout is None:
                while not self._qsize():
                    self.not_empty.wait()
            elif timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            else:
                endtime = _now() + timeout
                while not self._qsize():
                    remaining = endtime - _now()
                    if remaining <= 0.0:
                        raise queue.Empty
                    self.not_empty.wait(remaining)
            item = self._get()
            self.not_full.notify()
            return item

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def _init(self, maxsize: int) -> None:
        self.queue: Any = deque()

    def _qsize(self) -> int:
        return len(self.queue)

    def _put(self, item: Any) -> None:
        self.queue.append(item)

    def _get(self) -> Any:
        return self.queue.popleft()


class LifoQueue(Queue):
    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _get(self) -> Any:
        return self.queue.pop()


class PriorityQueue(Queue):
    def _init(self, maxsize: int) -> None:
        self.queue = []

    def _put(self, item: Any) -> None:
        heapq.heappush(self.queue, item)

    def _get(self) -> Any:
        return heapq.heappop(self.queue)


class SimpleQueue(Queue):
    """queue.SimpleQueue: an unbounded FIFO (the extra methods of Queue do no harm)."""

    def __init__(self) -> None:
        super().__init__(0)


# -- virtual time ---------------------------------------------------------------------------


def _read_clock() -> float:
    """The virtual clock; a read by a managed thread lets CLOCK_READ pass, so that a pool
    that spins on the clock until a deadline gets there, as it would in real time."""
    m = _me()
    if m is not None:
        m.sched.advance(m.sched.now + CLOCK_READ)
    return _now()


def monotonic() -> float:
    return _read_clock()


def perf_counter() -> float:
    return _read_clock()


def time_() -> float:
    return EPOCH + _read_clock() - CLOCK_START if _ACTIVE else _real_time()


def monotonic_ns() -> int:
    return int(_read_clock() * 1e9)


def time_ns() -> int:
    return int(time_() * 1e9)


def sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    m = _op("time.sleep", None)
    if m is None:
        _real_sleep(seconds)
    elif seconds > 0:
        _wait(m, None, lambda: False, seconds, f"time.sleep({seconds:g})")


# -- substitution into the target's modules -------------------------------------------------


class _ModuleProxy(types.ModuleType):
    """A module that answers with our versions of some names, and the real module's rest."""

    def __init__(self, real: types.ModuleType, overrides: dict[str, Any]) -> None:
        super().__init__(real.__name__, real.__doc__)
        self.__dict__.update(overrides)
        self.__dict__["_poolcheck_real"] = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_poolcheck_real"], name)


_THREADING_NAMES = {"Lock": Lock, "RLock": RLock, "Condition": Condition,
                    "Semaphore": Semaphore, "BoundedSemaphore": BoundedSemaphore,
                    "Event": Event}
_TIME_NAMES = {"monotonic": monotonic, "time": time_, "sleep": sleep,
               "perf_counter": perf_counter, "monotonic_ns": monotonic_ns, "time_ns": time_ns}
_QUEUE_NAMES = {"Queue": Queue, "LifoQueue": LifoQueue, "PriorityQueue": PriorityQueue,
                "SimpleQueue": SimpleQueue}

THREADING = _ModuleProxy(threading, _THREADING_NAMES)
TIME = _ModuleProxy(time, _TIME_NAMES)
QUEUE = _ModuleProxy(queue, _QUEUE_NAMES)


def _replacements() -> dict[int, tuple[object, object]]:
    """id(real object) -> (real object, its cooperative stand-in)."""
    pairs: list[tuple[object, object]] = [(threading, THREADING), (time, TIME), (queue, QUEUE),
                                          (_thread.allocate_lock, Lock)]
    for module, names in ((threading, _THREADING_NAMES), (time, _TIME_NAMES),
                          (queue, _QUEUE_NAMES)):
        pairs += [(getattr(module, name), coop) for name, coop in names.items()]
    return {id(real): (real, coop) for real, coop in pairs}


def _system_dirs() -> tuple[str, ...]:
    """Where the standard library and installed packages live."""
    import site
    import sysconfig

    dirs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    return tuple(os.path.join(os.path.abspath(d), "") for d in dirs)


_OWN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")


def project_modules(cls: type) -> list[types.ModuleType]:
    """The loaded modules of the project ``cls`` belongs to: its top-level package's
    modules (``urllib3.*``, ``sqlalchemy.*``), or, for a top-level module outside the
    system's folders, every module in its folder and below. A pool's queue or lock is
    often made in another module of its project (SQLAlchemy's ``util.queue``); the
    standard library and poolcheck itself are never part of it."""
    system = _system_dirs()
    roots: set[str] = set()
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        path = getattr(module, "__file__", None)
        if klass is object or not path:
            continue
        top = klass.__module__.split(".")[0]
        top_module = sys.modules.get(top)
        top_path = getattr(top_module, "__file__", None)
        if top_path is None:
            continue
        root = os.path.join(os.path.dirname(os.path.abspath(top_path)), "")
        if "." in klass.__module__ or os.path.basename(top_path) == "__init__.py":
            roots.add(root)  # a package: its folder
        elif root not in system:
            roots.add(root)  # a top-level module of the user's: its folder
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(module, types.ModuleType) or not isinstance(path, str):
            continue
        path = os.path.abspath(path)
        mine = [r for r in roots if path.startswith(r)]
        if path.startswith(_OWN_DIR) or not mine:
            continue
        installed = any(r.startswith(d) for r in mine for d in system)
        if not installed and any(path.startswith(d) for d in system):
            continue  # a system folder inside the user's folder (a virtualenv in it)
        found.append(module)
    return found


@contextmanager
def substituted(cls: type, files: frozenset[str],
                modules: Sequence[types.ModuleType] = (),
                only_time: bool = False) -> Iterator[list[str]]:
    """Cooperative primitives in the modules of ``cls``'s MRO that live in ``files``, in
    those classes' attributes, and in the default arguments of their functions, for the
    length of the block; also in the module-level names of ``modules`` (the rest of the
    project, see ``project_modules``); yields what was replaced. ``only_time``: the
    virtual clock only (an asyncio pool's: its loop is the scheduler, not its threads)."""
    swaps = _replacements()
    if only_time:
        clocks = {id(time)} | {id(getattr(time, name)) for name in _TIME_NAMES}
        swaps = {k: v for k, v in swaps.items() if k in clocks}
    undo: list[tuple[Any, str, object]] = []
    done: list[str] = []
    seen: set[int] = set()

    def stand_in(value: object) -> object | None:
        swap = swaps.get(id(value))
        return swap[1] if swap is not None and swap[0] is value else None

    def swap_defaults(func: types.FunctionType, label: str) -> None:
        for attr in ("__defaults__", "__kwdefaults__"):
            old = getattr(func, attr)
            if not old:
                continue
            items = list(old.items() if isinstance(old, dict) else enumerate(old))
            new = {k: stand_in(v) or v for k, v in items}
            if any(new[k] is not v for k, v in items):
                undo.append((func, attr, old))
                setattr(func, attr, new if isinstance(old, dict) else tuple(new.values()))
                done.append(f"{label} defaults")

    try:
        for klass in cls.__mro__:
            module = sys.modules.get(klass.__module__)
            if klass is object or module is None or getattr(module, "__file__", None) not in files:
                continue
            targets: list[tuple[Any, str]] = [(klass, klass.__qualname__)]
            if id(module) not in seen:
                seen.add(id(module))
                targets.insert(0, (module, module.__name__))
            for owner, label in targets:
                for name, value in list(vars(owner).items()):
                    new = stand_in(value)
                    if new is None:
                        func = getattr(value, "__func__", value)  # staticmethod, classmethod
                        if isinstance(func, types.FunctionType):
                            swap_defaults(func, f"{label}.{name}")
                        continue
                    if isinstance(owner, type) and isinstance(new, types.FunctionType):
                        new = staticmethod(new)  # a builtin on a class takes no self; ours would
                    undo.append((owner, name, value))
                    setattr(owner, name, new)
                    done.append(f"{label}.{name}")
        for module in modules:
            if id(module) in seen:
                continue
            seen.add(id(module))
            for name, value in list(vars(module).items()):
                new = stand_in(value)
                if new is not None:
                    undo.append((module, name, value))
                    setattr(module, name, new)
                    done.append(f"{module.__name__}.{name}")
        yield done
    finally:
        for owner, name, value in reversed(undo):
            setattr(owner, name, value)
