"""Run the checks in a child process: the target can crash, hang or print, the grader goes on.

The parent never imports the target. A child process (``python -I -m poolcheck.app.isolation``)
loads it, runs the checks and sends each result back on a pipe of its own; its stdout and stderr
go to another pipe, of which the parent keeps only the tail. The parent gives each group of
checks a wall-clock limit (a backstop: the watchdogs inside the child come first), and the
child has a memory limit. If the child dies or overruns, the checks it was running are
reported as failed (or timed out) with the reason and the end of its output, and a fresh
child runs the checks that remain. Only the parent writes the reports.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from poolcheck.app import channel
from poolcheck.app.sandbox import Confinement, Protection, Sandboxing
from poolcheck.causes import Cause
from poolcheck.judge.user import UserInvariant
from poolcheck.observe.history import dump_history
from poolcheck.run.checks import (
    PARALLEL,
    STRESS_ROUNDS,
    CheckResult,
    all_checks,
    reproduce_command,
)
from poolcheck.run.user_checks import UserChecks
from poolcheck.run.verify import (
    ControlledVerifier,
    HistoryVerifier,
    SequentialVerifier,
    StressVerifier,
)
from poolcheck.settings import Profile

MEMORY_MB = 4096  # address space of the child; threads reserve much more than they use
LOAD_LIMIT = 30.0  # seconds to import the target and build nothing yet
OUTPUT_TAIL = 2000  # characters of the child's output kept for a report
OUTPUT_LIMIT = 64 * 1024 * 1024  # bytes a child may print before it is stopped
OPEN_FILES = 1024  # descriptors a child may hold
PROCESSES = 1024  # processes and threads of a sandboxed child (it has a user of its own)
FILE_SIZE = 256 * 1024 * 1024  # bytes of one file a child writes
MARGIN = 60.0  # seconds on top of a group's own budget before the parent steps in


@dataclass
class Outcome:
    """What an isolated run learned: a load error, or the results in check order."""

    load_error: str | None = None
    command_spec: str = ""
    results: list[CheckResult] = field(default_factory=list)
    output_bytes: int = 0  # what the target printed, in total
    missing: tuple[Protection, ...] = ()  # protections asked for and not in force


def group_limit(profile: Profile, names: list[str], margin: float = MARGIN) -> float:
    """How long the parent waits for a group of checks before stopping the child."""
    if names == [PARALLEL.name] or (names and all(n.startswith("controlled/") for n in names)):
        return profile.parallel_seconds + profile.shrink_seconds + margin
    if names and names[0].startswith("stress/"):
        return profile.stress_seconds + profile.shrink_seconds * len(names) + margin
    return margin + profile.examples * profile.steps * 0.05  # one sequential check


def run_isolated(spec: str, adapter: str, profile: Profile, seed: int,
                 only: list[str] | None = None,
                 progress: Callable[[CheckResult], None] | None = None,
                 record: Path | None = None, memory_mb: int = MEMORY_MB,
                 loaded: Callable[[str], None] | None = None,
                 margin: float = MARGIN, exit_first: bool = False,
                 invariants: Sequence[UserInvariant] = (),
                 sandbox: Sandboxing | None = None) -> Outcome:
    """The checks of TARGET ``spec``, run in child processes; ``loaded`` hears the target's
    name (with ``--adapter`` if needed) once it has loaded, ``progress`` each result.
    ``exit_first``: stop at the first check that does not pass. ``invariants``: user
    invariants, judged here on the facts of every stress round the child sends.
    ``sandbox``: confine each child (``poolcheck.app.sandbox``)."""
    outcome = Outcome()
    remaining = [c.name for c in all_checks()
                 if (c.name in only if only is not None else c.default)]
    user = UserChecks(invariants, spec, seed, profile.name) if invariants else None
    recorded = len(list(record.glob("*.jsonl"))) if record else 0
    while remaining or user is not None:
        confinement = sandbox.confine(spec) if sandbox is not None else Confinement([])
        outcome.missing = confinement.missing
        cpu = 2 * sum(group_limit(profile, [n], margin) for n in remaining) + LOAD_LIMIT
        # every stress round's facts come back: the grader judges them (run.verify)
        rounds_asked = user is not None or any(n.startswith("stress/") for n in remaining)
        child = _Child(spec, adapter, profile, seed, remaining, record, memory_mb,
                       observe=rounds_asked, observe_all=user is not None,
                       exit_first=exit_first,
                       confinement=confinement, cpu_seconds=int(cpu))
        verifier = StressVerifier(remaining, seed, spec)
        histories = HistoryVerifier(remaining)
        programs = SequentialVerifier()
        runs = ControlledVerifier(remaining)
        try:
            loaded_spec = child.wait_loaded()
            first = not outcome.command_spec
            if isinstance(loaded_spec, _Failed) and first:
                outcome.load_error = loaded_spec.reason
                return outcome
            if isinstance(loaded_spec, _Failed):  # loaded once, not again: give up the rest
                _blame(outcome, remaining, loaded_spec, seed, profile, progress)
                remaining = []
                break
            outcome.command_spec = verifier.command_spec = loaded_spec
            if user is not None:
                user.command_spec = loaded_spec
            if first and loaded:
                loaded(loaded_spec)
            running: list[str] = []
            deadline = time.monotonic() + LOAD_LIMIT
            while True:
                message = child.next_message(deadline)
                if not isinstance(message, _Failed) and message[0] == "example" and \
                        message[1][0] not in running:
                    child.stop()
                    message = _Failed("failed", "the pool's process sent the steps of a "
                                      "check that was not running")
                if isinstance(message, _Failed):  # died or overran: blame what was running
                    if user is not None and (STRESS_ROUNDS in running or any(
                            n.startswith("stress/") for n in running)):
                        _report_all(outcome, user.results(message.reason), progress)
                        user = None
                    running = [n for n in running if n != STRESS_ROUNDS]
                    _blame(outcome, running or remaining, message, seed, profile, progress)
                    reported = {r.name for r in outcome.results}
                    remaining = [] if exit_first else [n for n in remaining
                                                       if n not in reported]
                    break
                kind, body = message
                if kind == "start":
                    if user is not None and user.rounds:  # its rounds ran: they are over
                        _report_all(outcome, user.results(), progress)
                        user = None
                    running = list(body)
                    deadline = time.monotonic() + group_limit(profile, running, margin)
                elif kind == "example":
                    programs.see(*body)
                elif kind == "controlled":
                    runs.see(body)
                elif kind == "round":
                    verifier.see(body)
                    if user is not None:
                        user.see(body)
                elif kind == "history":  # checked by the channel, judged and written here
                    if histories.wants(body[0]):
                        histories.see(*body)
                    if record is not None:  # the child cannot write outside its sandbox
                        recorded += 1
                        dump_history(body[1], record / f"{body[0]}-{recorded:06d}.jsonl")
                elif kind == "result":
                    body = runs.verify(programs.verify(histories.verify(verifier.verify(body))))
                    outcome.results.append(body)
                    running.remove(body.name)
                    remaining.remove(body.name)
                    if progress:
                        progress(body)
                    if user is not None and body.name.startswith("stress/") and not any(
                            n.startswith("stress/") for n in running):
                        _report_all(outcome, user.results(), progress)  # the rounds are over
                        user = None
                    if exit_first and body.status != "passed":
                        remaining = []
                        break
                elif kind == "done":  # a check it never reported did not pass
                    if user is not None:
                        _report_all(outcome, user.results(), progress)
                        user = None
                    _blame(outcome, remaining, _Failed("failed", "the pool's process "
                           "finished without a result for this check"), seed, profile,
                           progress)
                    remaining = []
                    break
        finally:
            child.stop()
            outcome.output_bytes += child.output_bytes
    order = {name: i for i, name in enumerate(c.name for c in all_checks())}
    outcome.results.sort(key=lambda r: order.get(r.name, len(order)))  # user checks last
    return outcome


def _report_all(outcome: Outcome, results: list[CheckResult],
                progress: Callable[[CheckResult], None] | None) -> None:
    for result in results:
        outcome.results.append(result)
        if progress:
            progress(result)


def _blame(outcome: Outcome, names: list[str], failure: _Failed, seed: int,
           profile: Profile, progress: Callable[[CheckResult], None] | None) -> None:
    """Report ``names`` as ended by ``failure``."""
    invariants = {c.name: c.invariant for c in all_checks()}
    for name in list(names):
        result = CheckResult(name, invariants[name], failure.status, failure.reason,
                             reproduce_command(outcome.command_spec, name, seed, profile.name),
                             cause=Cause.PROCESS_STOPPED)
        outcome.results.append(result)
        if progress:
            progress(result)


@dataclass
class _Failed:
    status: Any  # "failed" or "timeout"
    reason: str


class _Child:
    """One child process, its result pipe and its drained output."""

    def __init__(self, spec: str, adapter: str, profile: Profile, seed: int, only: list[str],
                 record: Path | None, memory_mb: int, observe: bool = False,
                 observe_all: bool = False, exit_first: bool = False,
                 confinement: Confinement | None = None, cpu_seconds: int | None = None) -> None:
        self.spec = spec
        self.context = channel.Context(spec, seed, profile.name, frozenset(only), observe,
                                       record=record is not None)
        self.confinement = confinement or Confinement([])
        self.overflowed = False
        read_fd, write_fd = os.pipe()
        args = {"spec": spec, "adapter": adapter, "profile": asdict(profile), "seed": seed,
                "only": only, "record": record is not None, "fd": write_fd,
                "memory_mb": memory_mb, "observe": observe, "observe_all": observe_all,
                "exit_first": exit_first,
                "user": self.confinement.user, "cpu_seconds": cpu_seconds}
        extra = (self.confinement.info_fd,) if self.confinement.info_fd is not None else ()
        # -I: neither the current folder (a learner's pool.py, model.py, poolcheck.py) nor
        # PYTHON* variables decide what the child imports; poolcheck comes from where it is
        # installed, the target from its path (or, for a module, the current folder last).
        try:
            self.proc = subprocess.Popen(
                [*self.confinement.prefix, sys.executable, "-I", "-m",
                 "poolcheck.app.isolation", json.dumps(args)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(write_fd, *extra), start_new_session=True)
        except BaseException:
            os.close(read_fd)
            self.confinement.close()
            raise
        finally:
            os.close(write_fd)
        self.namespace = self.confinement.started()  # its first process, when sandboxed
        self.messages: queue.Queue[Any] = queue.Queue()
        self.tail: collections.deque[bytes] = collections.deque()
        self.tail_size = 0
        self.output_bytes = 0
        self._readers = [
            threading.Thread(target=self._read_messages, args=(read_fd,), daemon=True),
            threading.Thread(target=self._drain_output, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_messages(self, fd: int) -> None:
        """Frames from the child, checked (``channel``): data only, never unpickled."""
        with os.fdopen(fd, "rb") as pipe:
            while True:
                head = pipe.read(channel.HEADER)
                if len(head) < channel.HEADER:
                    break
                try:
                    body = pipe.read(channel.frame_length(head))
                    if len(body) < int.from_bytes(head, "big"):
                        break  # a torn frame: the child died mid-write
                    kind, value = channel.parse(body, self.context)
                except channel.BadFrame as exc:
                    self.messages.put(_Failed("failed", "the pool's process sent a result "
                                              f"poolcheck cannot accept: {exc}"))
                    return
                if kind == "loaded":
                    self.context.command_spec = value
                self.messages.put((kind, value))
        self.messages.put(None)

    def _drain_output(self) -> None:
        stream = cast(io.BufferedReader, self.proc.stdout)
        for chunk in iter(lambda: stream.read1(65536), b""):
            self.output_bytes += len(chunk)
            if self.output_bytes > OUTPUT_LIMIT and not self.overflowed:
                self.overflowed = True  # a flood: the child ends, its checks fail
                self._kill()
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size - len(self.tail[0]) >= OUTPUT_TAIL and len(self.tail) > 1:
                self.tail_size -= len(self.tail.popleft())

    def wait_loaded(self) -> str | _Failed:
        message = self.next_message(time.monotonic() + LOAD_LIMIT, "while loading the target")
        if isinstance(message, _Failed):
            return _Failed(message.status, f"{self.spec}: {message.reason}")
        kind, body = message
        if kind == "load_error":
            return _Failed("failed", body)
        return str(body)

    def next_message(self, deadline: float,
                     during: str = "during this check") -> tuple[str, Any] | _Failed:
        try:
            message = self.messages.get(timeout=max(0.0, min(deadline - time.monotonic(),
                                                              threading.TIMEOUT_MAX)))
        except queue.Empty:
            self.stop()
            return _Failed("timeout", f"did not finish within its time limit ({during}); "
                           f"the pool's process was stopped{self._output()}")
        if isinstance(message, _Failed):
            self.stop()
            return message
        if message is None:
            code = self.proc.wait()
            how = (f"was killed by signal {signal.Signals(-code).name}" if code < 0
                   else f"exited with code {code}")
            if self.overflowed:
                return _Failed("failed", f"the process running the pool printed more than "
                               f"{OUTPUT_LIMIT // 2**20} MiB {during} and was stopped"
                               f"{self._output()}")
            return _Failed("failed", f"the process running the pool {how} {during} "
                           f"(a crash, os._exit, or a limit: memory, CPU time, processes, "
                           f"open files){self._output()}")
        return message  # type: ignore[no-any-return]

    def _output(self) -> str:
        for t in self._readers[1:]:
            t.join(1.0)
        text = b"".join(self.tail).decode("utf-8", "replace")[-OUTPUT_TAIL:].strip()
        return f"\nlast output of the pool's process:\n{text}" if text else ""

    def _kill(self) -> None:
        """End the child and everything it started. In a sandbox, killing the namespace's
        first process makes the kernel end every process in it (a new session is no
        escape), and bwrap exits only once they are gone: wait for that first. Outside
        one (or if bwrap lingers), its process group."""
        if self.proc.poll() is not None:
            return
        if self.namespace is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.namespace, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10.0)
                return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()

    def stop(self) -> None:
        self._kill()
        self.proc.wait()
        self.confinement.close()


# -- the child ---------------------------------------------------------------------------


def _child(args: dict[str, Any]) -> None:
    out = os.fdopen(args["fd"], "wb")

    def send(kind: str, body: object) -> None:
        out.write(channel.frame(kind, body))
        out.flush()

    confine_child(args["memory_mb"], args["user"], args["cpu_seconds"])
    from poolcheck.errors import LoadError
    from poolcheck.load.targets import load
    from poolcheck.observe.history import History, history_lines
    from poolcheck.observe.wire import facts_json, steps_json
    from poolcheck.run.checks import run_checks

    try:
        target = load(args["spec"], args["adapter"])
    except LoadError as exc:
        send("load_error", str(exc))
        return
    send("loaded", target.command_spec)

    def record(kind: str, history: History) -> None:  # the parent judges it, writes it
        if args["record"] or kind == "parallel":  # the others: their facts are sent
            send("history", {"kind": kind, "lines": history_lines(history)})

    run_checks(target, Profile(**args["profile"]), args["seed"], args["only"],
               progress=lambda r: send("result", channel.result_body(r)),
               record=record,
               observe=(lambda r: send("round", facts_json(r))) if args["observe"] else None,
               stress_first=args["exit_first"], observe_all=args["observe_all"],
               examples=lambda check, maxsize, block, steps: send("example", {
                   "check": check, "maxsize": maxsize, "block": block,
                   "steps": steps_json(steps)}),
               starting=lambda names: send("start", names),
               controlled_facts=lambda r: send("controlled", facts_json(r)))
    send("done", None)


def confine_child(memory_mb: int, user: int | None, cpu_seconds: int | None) -> None:
    """Limits, then an unprivileged user: both before the target is imported, so a pool
    never runs without them (an unprivileged process cannot raise a hard limit)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on this platform: wall-clock limits hold
        return
    limits = [(resource.RLIMIT_AS, memory_mb * 1024 * 1024),
              (resource.RLIMIT_NOFILE, OPEN_FILES), (resource.RLIMIT_FSIZE, FILE_SIZE),
              (resource.RLIMIT_CORE, 0)]
    if cpu_seconds is not None:
        limits.append((resource.RLIMIT_CPU, cpu_seconds))
    if user is not None:  # counted per user: only for a user of the child's own
        limits.append((resource.RLIMIT_NPROC, PROCESSES))
    for which, value in limits:
        try:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass  # the wall-clock limits still hold
    if user is not None:
        os.setgroups([])
        os.setresgid(user, user, user)
        os.setresuid(user, user, user)


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
    sys.stdout.flush()
    os._exit(0)  # threads a hung pool left behind must not keep the child alive
