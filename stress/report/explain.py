"""Plain words for a failed check: what went wrong here, the idea behind it, one hint.

Written for learners, read next to the report. The concept is chosen from what this run
showed, never from the pool's name: whether the same invariant also broke with one caller
at a time (then it is not a race), and the cause the run named (``poolcheck.causes``: a
factory that raised in the shrunk program, waiters close() left waiting, an error too
early), never the wording of a message. The hints point at where to look, not at the code
to write.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

from poolcheck.causes import Cause
from poolcheck.judge import linearize
from poolcheck.judge.user import UserInvariant
from poolcheck.model import Invariant
from poolcheck.observe.history import History
from poolcheck.run.checks import CheckResult

_OWN = str(Path(__file__).resolve().parents[1])  # poolcheck's own frames are not the learner's
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n'
                    r"(?P<code>[^\n]*)")


@dataclass(frozen=True)
class Explanation:
    what: str  # this run, in one sentence
    concept: str  # the general idea, named
    about: str  # the idea in two sentences
    hint: str
    where: tuple[str, ...] = ()  # lines of the learner's code the report's stacks show

    def as_json(self) -> dict[str, object]:
        return {"what": self.what, "concept": self.concept, "about": self.about,
                "hint": self.hint, "where": list(self.where)}

    def text(self, what: bool = True) -> str:
        """The explanation as lines; ``what=False`` when the report's own first line,
        which says the same, is printed right above it."""
        lines = [f"what happened: {self.what}"] if what else []
        lines += [f"concept: {self.concept}. {self.about}", f"hint: {self.hint}"]
        if self.where:
            lines.append("your code, where the report's stacks were: " + "; ".join(self.where))
        return "\n".join(lines)


def explain(result: CheckResult, results: list[CheckResult]) -> Explanation | None:
    """The explanation of ``result`` (None if it passed), given the whole run's results."""
    if result.status == "passed":
        return None
    message = result.message.strip()
    what = message.splitlines()[0] if message else result.status
    strategy = result.name.split("/")[0]
    same_alone = {r.status for r in results
                  if r.name == f"sequential/{result.invariant}"}
    any_alone = any(r.status == "failed" for r in results if r.name.startswith("sequential/"))
    race = strategy != "sequential" and "failed" not in same_alone and (
        result.invariant != Invariant.LINEARIZABLE or not any_alone) and not (
        result.evidence is not None and _one_at_a_time(*result.evidence))
    concept, about, hint = _concept(result, strategy, race)
    return Explanation(what, concept, about, hint, _where(message))


# What a cause means, whatever the invariant: (concept, about, hint).
_BY_CAUSE: dict[Cause, tuple[str, str, str]] = {
    Cause.PROCESS_STOPPED: (
        "the pool's process stopped", "The checks run your pool in a separate process, and "
        "it crashed, exited or ran out of time or memory.",
        "Run the reproduce command and look at the last output shown."),
    Cause.NOT_EXERCISED: (
        "nothing to check yet", "get_conn never handed out a connection, so this property "
        "could not be observed.", "Make get_conn return connections first; the errors check "
        "says what it raised instead."),
    Cause.NOT_IMPLEMENTED: (
        "not written yet", "Part of the pool is still missing.",
        "Finish the step of the exercise this check belongs to."),
    Cause.CANNOT_DRIVE: (
        "beyond the controlled scheduler", "The pool blocked on something the scheduler does "
        "not control (a lock or queue from another module, a thread the pool started), so "
        "this check cannot drive it; the other checks still judge it.",
        "Nothing to fix for this check alone."),
    Cause.NOT_COMPLETED: (
        "not completed", "This check could not finish because the pool hangs.",
        "Fix the hang first (the deadlock-free or timeout check says where)."),
    Cause.INCONSISTENT: (
        "a claim the facts deny", "The process that ran your pool reported this check as "
        "passed, but the facts it recorded show a violation (or are not the facts of the "
        "rounds poolcheck asked for). poolcheck judges the facts itself.",
        "Run the reproduce command outside the grader; if the pool or its tests change "
        "poolcheck's own code while it runs, stop."),
    Cause.CLOSED_WHILE_HELD: (
        "closing a connection a caller holds", "The pool closed a connection that a caller "
        "had checked out and was still using.", "close() closes only the idle connections; "
        "one that is checked out is closed when it comes back, in put_conn."),
    Cause.LEAK_ON_BASEEXCEPTION: (
        "leaking on an exception path (BaseException)", "A BaseException that is not an "
        "Exception (KeyboardInterrupt, a timeout from another library) went through the "
        "pool and the slot it had reserved was never given back.", "`except Exception` does "
        "not see it: give the slot back in a `finally` or `except BaseException` that "
        "re-raises."),
    Cause.LEAK_ON_FACTORY_ERROR: (
        "leaking on an exception path", "The connection factory raised and the slot "
        "reserved for that connection was never given back.", "Whatever the factory raises, "
        "the reservation must be undone before the error leaves get_conn."),
    Cause.LEAK_ON_PUT_NONE: (
        "a slot not given back by put_conn(None)", "A caller that closed a broken "
        "connection returned its slot with put_conn(None), and the pool did not count it as "
        "free.", "put_conn(None) means: one fewer connection exists, the slot is free again, "
        "and a waiter may use it."),
    Cause.CLOSE_LEFT_IDLE_OPEN: (
        "close() must close what it holds", "close() left idle connections open, and "
        "nothing will ever hand them out again.", "close() closes every idle connection; "
        "those checked out are closed when returned."),
    Cause.CLOSE_WOKE_NOBODY: (
        "close() must wake waiters", "Callers waiting in get_conn when close() ran kept "
        "waiting: the state changed, but nobody told them.", "After close() changes the "
        "state, wake every waiter so each one looks again and raises ClosedPoolError."),
    Cause.EMPTY_TOO_EARLY: (
        "deadline arithmetic", "EmptyPoolError came before the timeout had passed.",
        "Compute the deadline once; after every wake-up wait only for the time left, and "
        "give up only when it has passed."),
    Cause.LOST_WAKEUP: (
        "lost wakeup", "A caller waited for ever although a connection or a free slot was "
        "available: whoever made it available did not wake a waiter, or a slot was lost.",
        "Every path that returns a connection or frees a slot (put_conn, put_conn(None), a "
        "failed connect) must notify; waiters re-check in a loop."),
    Cause.CANCELLED: (
        "an exception while waiting", "A task waiting in get_conn was cancelled "
        "(task.cancel(): asyncio.wait_for, a timeout, a task group): afterwards the pool had "
        "lost a slot, leaked a connection, or left another waiter asleep although a wake-up "
        "had been sent to the cancelled one.", "CancelledError is a BaseException: give back "
        "in `except BaseException:`/`finally:` what the cancelled call had reserved or been "
        "handed (a slot, a connection, a resolved future), and pass it on to the next waiter "
        "before re-raising."),
    Cause.ACROSS_AWAIT: (
        "check-then-act across an await", "The tasks got results that no one-at-a-time "
        "order of their calls could give: a decision was made, then the task awaited, and "
        "another task changed the state in between.", "Do not await between a check (is "
        "something idle? is there room? is the pool closed?) and the change it leads to: "
        "reserve first, then await."),
}
# Causes a sequential run shows only with one caller at a time: said only of a
# sequential check (a stress round's capacity failure has no shrunk program to read).
_SEQUENTIAL_ONLY = frozenset({Cause.LEAK_ON_BASEEXCEPTION, Cause.LEAK_ON_FACTORY_ERROR,
                              Cause.LEAK_ON_PUT_NONE, Cause.CLOSE_LEFT_IDLE_OPEN})
# Causes of a race: said only when one caller at a time does not break it as well.
_RACE_ONLY = frozenset({Cause.ACROSS_AWAIT})


def _concept(result: CheckResult, strategy: str, race: bool) -> tuple[str, str, str]:
    cause = result.cause
    if result.status == "timeout":
        cause = Cause.PROCESS_STOPPED
    elif result.status == "error" and cause is None:
        cause = Cause.NOT_COMPLETED
    if cause is not None and (strategy == "sequential" or cause not in _SEQUENTIAL_ONLY) and (
            race or cause not in _RACE_ONLY):
        return _BY_CAUSE[cause]
    inv = result.invariant
    if isinstance(inv, UserInvariant):
        return ("your own invariant", f"The property you added as {inv.name!r} ({inv.source}) "
                "did not hold in a stress round: the messages above are what it returned.",
                "Re-run that round (the reproduce line, or the round's seed with `poolcheck "
                "stress`) and follow the connections and calls your invariant names.")
    if inv == Invariant.BOUND:
        if race:
            return ("check-then-act", "Two callers both saw room for one more connection "
                    "and both acted on it: checking and claiming are separate steps, and "
                    "another thread ran in between.", "Make 'is there room?' and 'claim "
                    "it' one step under the lock, before you connect or let go of it; "
                    "after a wait, check again (while, not if): a waiter woken for room "
                    "may find it taken.")
        return ("the limit is not enforced", "Even with one caller at a time, some path "
                "creates or keeps a connection beyond maxsize.", "List every place a "
                "connection is created or kept; each must check the limit against an "
                "up-to-date count.")
    if inv == Invariant.EXCLUSIVE:
        if race:
            return ("check-then-act on the idle list", "A caller looked at an idle "
                    "connection and took it in a separate step; another caller took the "
                    "same one in between.", "Looking and taking must be one step under the "
                    "lock: never a peek followed by a remove.")
        return ("double hand-out", "The pool handed out a connection that was already "
                "checked out: it was returned twice, or stayed in the idle list.",
                "Follow one connection: at any moment it is either idle in the pool or "
                "held by one caller, never both.")
    if inv == Invariant.CAPACITY:
        return ("a lost slot", "The pool can no longer hand out maxsize connections: its "
                "count went up on some path and never came back down.", "Check every "
                "path that reserves a slot: a factory that raises (an Exception or a "
                "BaseException), put_conn(None), a wait that times out.")
    if inv == Invariant.NO_LEAK:
        return ("a leaked connection", "A connection the pool made stayed open although "
                "nobody holds it and the pool does not keep it.", "Follow every path on "
                "which the pool lets go of a connection (a full or closed pool, a caller "
                "that stopped waiting, an error): each must close it or keep it idle.")
    if inv == Invariant.CLOSED:
        if race:
            return ("check-then-act with close()", "A decision about 'open or closed' was "
                    "made on a value read before close() ran.", "Read the closed flag and "
                    "act on it under the same lock that close() takes.")
        return ("a closed pool must refuse", "After close(), get_conn must raise "
                "ClosedPoolError and returned connections must be closed.", "Check the "
                "closed flag in get_conn (also after every wait) and in put_conn.")
    if inv == Invariant.TIMEOUT:
        return ("a wait that ignores its timeout", "get_conn waited far longer than its "
                "timeout.", "Compute the deadline once, before the loop; every wait inside "
                "get_conn must be bounded by the time left until it, also after a wake-up "
                "that found nothing.")
    if inv == Invariant.WAKEUP:
        return ("lost wakeup", "A caller kept waiting although a connection or a free slot "
                "was available: whoever made it available did not wake a waiter.",
                "Every path that returns a connection or frees a slot (put_conn, "
                "put_conn(None), a failed connect) must notify; waiters re-check in a loop.")
    if inv == Invariant.DEADLOCK_FREE:
        return ("a lock that is never released", "A call never returned: the thread waits "
                "for something no other thread will ever do, typically a lock taken by "
                "hand and not released on some path.", "Prefer `with lock:` to acquire() "
                "and release(), and look at the stacks: where is each thread waiting?")
    if inv == Invariant.ERRORS:
        return ("only the contract's errors", "The pool raised an exception the contract "
                "does not allow, or changed the factory's.", "get_conn raises "
                "ClosedPoolError, EmptyPoolError (block=True only) or exactly what the "
                "factory raised; put_conn and close raise nothing.")
    if inv == Invariant.INTERRUPT_SAFE:
        return ("an exception while waiting", "A caller waiting in get_conn was interrupted "
                "(KeyboardInterrupt, a gevent or eventlet Timeout): afterwards the pool had "
                "lost a slot, leaked a connection, or left another waiter asleep although "
                "a wake-up had been sent to the interrupted one.", "Undo in `except "
                "BaseException:`/`finally:` whatever the interrupted call had reserved, and "
                "pass on a wake-up it may have received (notify another waiter before "
                "re-raising): threading.Condition does not do it for you.")
    if inv == Invariant.LINEARIZABLE and race:
        return ("an outcome no sequential order explains", "The threads got results that "
                "no one-at-a-time order of their calls could give: a decision was made on "
                "state that another thread changed in between (check-then-act).", "Every "
                "decision (is something idle? is there room? is the pool closed?) and the "
                "change it leads to must happen under one lock.")
    return ("fix the one-caller-at-a-time behaviour first", "This pool already breaks the "
            "contract without concurrency; the concurrent checks only repeat it.",
            "Start with the failing sequential checks.")


def _one_at_a_time(history: History, verdict: linearize.Result) -> bool:
    """Did every call up to the one the model refuses run alone (no two overlap)? Then
    the violation needs no concurrency, whichever check found it."""
    if verdict.failed is None:
        return False
    until = history.events[verdict.failed].call
    calls = sorted((e for e in history.events if e.call <= until), key=lambda e: e.call)
    return all(a.ret is not None and a.ret < b.call for a, b in itertools.pairwise(calls))


def _where(message: str) -> tuple[str, ...]:
    """The learner's frames in the report's stacks and tracebacks, in order, once each."""
    seen: list[str] = []
    for m in _FRAME.finditer(message):
        path = m["file"]
        if path.startswith(_OWN) or "/lib/python3" in path or path.startswith("<"):
            continue
        line = f"{Path(path).name}:{m['line']} in {m['func']}: {m['code'].strip()}"
        if line not in seen:
            seen.append(line)
    return tuple(seen[:6])


def checks_json(results: list[CheckResult]) -> list[dict[str, object]]:
    """The results as the JSON reports carry them, each failure with its explanation."""
    docs = []
    for r in results:
        doc = r.as_json()
        explanation = explain(r, results)
        if explanation is not None:
            doc["explanation"] = explanation.as_json()
        docs.append(doc)
    return docs
