"""The sequential check's judgment, one step at a time: what a step observed in, a verdict out.

The sequential machine (``poolcheck.run.sequential``) drives the pool and records each
step as a ``Step`` (facts only: what was called, what came back, which connections were
open afterwards); ``StepJudge`` decides. The machine asks it after every step, to stop and
shrink at the first violation; the grader asks it again, in its own process, on the steps
the pool's process sent (``poolcheck.run.verify``). ``observe`` must stay a pure function
of the steps seen so far: both must reach the same verdict on the same steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from poolcheck import model
from poolcheck.causes import Cause
from poolcheck.judge.judges import timing_fault
from poolcheck.model import Invariant
from poolcheck.observe.facts import Step

TRAIL = 12  # steps a report shows
# What a program did that can leak a slot, in the order the explanation prefers: a
# capacity violation names the first of these the program did.
SLOT_RISKS = (Cause.LEAK_ON_BASEEXCEPTION, Cause.LEAK_ON_FACTORY_ERROR, Cause.LEAK_ON_PUT_NONE)


@dataclass(frozen=True)
class Verdict:
    invariant: Invariant
    message: str  # with the last steps
    cause: Cause | None = None


class StepJudge:
    """The model and the checked-out connections, followed step by step."""

    def __init__(self, maxsize: int, block: bool) -> None:
        self.maxsize, self.block = maxsize, block
        self.state = model.initial(maxsize, block)
        self.held: list[int] = []  # checked out, in the order they were handed out
        self.labels: list[str] = []
        self.slot_risks: set[Cause] = set()

    def observe(self, s: Step) -> Verdict | None:
        """The first violation this step shows, if any."""
        if s.open_after is not None:  # idle connections the pool closed on its own: gone
            for conn in sorted(self.state.idle - set(s.open_after)):
                evicted = model.step(self.state, model.Call("evict", conn))
                assert isinstance(evicted, model.State)  # an idle one may always go
                self.state = evicted
        if s.op in ("state", "final"):
            return self._state(s) if s.op == "state" else self._final(s)
        self.labels.append(s.label)
        if s.op == "arm":
            self.slot_risks.add(Cause.LEAK_ON_BASEEXCEPTION if s.arm == "Interrupted"
                                else Cause.LEAK_ON_FACTORY_ERROR)
            return None
        if s.op == "discard":
            self.slot_risks.add(Cause.LEAK_ON_PUT_NONE)
        call = s.label.split(" -> ")[0]
        if s.raised and s.op != "get":
            return self._violated(Invariant.ERRORS, f"{call} raised {s.raised}",
                                  Cause.NOT_IMPLEMENTED if s.not_implemented else None)
        if s.op == "get":
            return self._get(s)
        if s.op == "put":
            self._give_back(s.conn)
            return self._apply(model.Call("put", s.conn, kept=s.kept))
        if s.op == "discard":
            self._give_back(s.conn)
            return self._apply(model.Call("discard", s.conn))
        if s.op == "close":
            idle = self.state.idle
            rejected = self._apply(model.Call("close"))
            left_open = [i for i in s.open_after or () if i in idle]
            if rejected or not left_open:
                return rejected
            return self._violated(Invariant.NO_LEAK, "close() left idle connection(s) "
                                  f"{', '.join(f'#{i}' for i in left_open)} open",
                                  Cause.CLOSE_LEFT_IDLE_OPEN)
        return None  # construct: it returned a pool

    def _get(self, s: Step) -> Verdict | None:
        if s.raised:
            if not s.outcome:
                return self._violated(Invariant.ERRORS, f"get_conn raised {s.raised}",
                                      Cause.NOT_IMPLEMENTED if s.not_implemented else None)
            if s.outcome == model.EMPTY and self.block:
                fault = timing_fault(s.timeout, s.elapsed)
                if fault:
                    return self._violated(fault.invariant, fault.message, fault.cause)
            return self._apply(model.Call("get", outcome=s.outcome))
        if s.foreign:
            return self._violated(Invariant.ERRORS, f"get_conn returned {s.foreign}, which its "
                                  "connection_factory did not make" + (
                                      f" (the factory had raised {s.swallowed} in this call: "
                                      "what the factory raises must propagate)"
                                      if s.swallowed else ""))
        if s.was_closed:
            return self._violated(Invariant.CLOSED, f"get_conn handed out connection #{s.conn}, "
                                  "which the pool had closed")
        rejected = self._apply(model.Call("get", s.conn))
        if rejected is None and s.conn is not None:
            self.held.append(s.conn)
        return rejected

    def _give_back(self, conn: int | None) -> None:
        if conn in self.held:
            self.held.remove(conn)

    def _state(self, s: Step) -> Verdict | None:
        """Between steps: what is checked out stays open; nothing open is lost."""
        open_now = s.open_after or ()
        shut = [i for i in self.held if i not in open_now]
        if shut:
            closed = self.state.closed
            return self._violated(
                Invariant.CLOSED if closed else Invariant.EXCLUSIVE,
                "the pool closed connection(s) {} while the caller still held them{}".format(
                    ", ".join(f"#{i}" for i in shut),
                    " (close() must close them when they are returned)" if closed else ""),
                Cause.CLOSED_WHILE_HELD)
        if self.block and len(open_now) > self.maxsize:
            return self._violated(Invariant.BOUND, f"{len(open_now)} connections are open "
                                  f"(maxsize {self.maxsize})")
        # a connection the pool made but never handed out may be idle in it (eager
        # creation, a minimum idle): only one seen handed out can be lost; the final step
        # still catches any left open after close() and every return
        lost = [i for i in open_now if i in self.state.seen and i not in self.held
                and i not in self.state.idle]
        if lost:
            return self._violated(Invariant.NO_LEAK, "connection(s) {} are open but neither "
                                  "checked out nor idle in the pool".format(
                                      ", ".join(f"#{i}" for i in lost)))
        return None

    def _final(self, s: Step) -> Verdict | None:
        """After close() and every return, nothing is open."""
        if self.held or not s.open_after:
            return None
        return self._violated(Invariant.NO_LEAK, "after close() and every return, "
                              f"connection(s) {', '.join(f'#{i}' for i in s.open_after)} "
                              "are still open")

    def _apply(self, call: model.Call) -> Verdict | None:
        result = model.step(self.state, call)
        if isinstance(result, model.Rejected):
            return self._violated(result.invariant, result.reason)
        self.state = result
        return None

    def _violated(self, invariant: Invariant, message: str,
                  cause: Cause | None = None) -> Verdict:
        if cause is None and invariant == Invariant.CAPACITY:
            cause = next((c for c in SLOT_RISKS if c in self.slot_risks), None)
        return Verdict(invariant, message + self.trail(), cause)

    def trail(self) -> str:
        last = self.labels[-TRAIL:]
        skipped = len(self.labels) - len(last)
        lines = ([f"  ... {skipped} earlier steps"] if skipped else []) + [
            f"  {s}" for s in last]
        return "\nsteps, each call and what it gave (maxsize={}, block={}):\n{}".format(
            self.maxsize, self.block, "\n".join(lines))
