"""Concurrent histories: what each thread called, what it got, and when.

A history is the only thing the linearizability checker sees, so it is validated strictly:
a malformed line must be reported as such (with its line number), never judged as a pool
bug. The format is the contract's section 5 (JSON Lines, a pool header, one call a line).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from poolcheck import model
from poolcheck.errors import HistoryError

OpName = Literal["get", "put", "close", "evict"]
OPS: tuple[OpName, ...] = ("get", "put", "close", "evict")
EVICTIONS = -1000  # evicts are the pool's own: each has a thread id of its own, from here down
PENDING = "pending"

_EVENT_FIELDS = frozenset(
    {"thread", "op", "conn", "outcome", "kept", "discard", "call", "return"})
_HEADER_EXAMPLE = '{"pool": {"maxsize": 2, "block": true}}'


@dataclass(frozen=True)
class Pool:
    """The history's first line: the configuration the pool ran with."""

    maxsize: int
    block: bool


@dataclass(frozen=True)
class Event:
    """One call by one thread; ``ret`` is None while (or because) it never returned.

    ``kept`` is meaningful for a put, ``discard`` marks ``put_conn(None)`` after the caller
    closed ``conn`` itself. ``line`` is where the event came from in a file, for reports.
    """

    thread: int
    op: OpName
    call: float
    ret: float | None
    outcome: str = model.OK
    conn: int | None = None
    kept: bool = False
    discard: bool = False
    line: int | None = None

    @property
    def pending(self) -> bool:
        return self.ret is None

    def model_call(self) -> model.Call:
        """The call as the model sees it (a pending call has no single one: see linearize)."""
        if self.discard:
            return model.Call("discard", self.conn, self.outcome)
        if self.op == "put":
            return model.Call("put", self.conn, self.outcome, kept=self.kept)
        return model.Call(self.op, self.conn, self.outcome)

    def describe(self) -> str:
        """``get -> 3``, ``put 3 kept``, ``close``: what the call did, in a few words."""
        if self.op == "get":
            result = PENDING if self.pending else (
                str(self.conn) if self.outcome == model.OK else self.outcome)
            return f"get -> {result}"
        if self.op == "close":
            return "close" + (" (pending)" if self.pending else "")
        if self.op == "evict":
            return f"evict {self.conn}"
        if self.pending:
            what = "(pending)"
        elif self.outcome != model.OK:
            what = f"-> {self.outcome}"
        else:
            what = "" if self.discard else ("kept" if self.kept else "closed")
        name = f"put {self.conn} discard" if self.discard else f"put {self.conn}"
        return f"{name} {what}".rstrip()


@dataclass(frozen=True)
class History:
    pool: Pool
    events: tuple[Event, ...] = ()

    @property
    def threads(self) -> list[int]:
        return sorted({e.thread for e in self.events})


# -- validation shared by files and in-memory histories ---------------------------------


def validate(history: History) -> None:
    """Raise HistoryError unless every event is self-consistent and threads are sequential."""
    _check_pool(history.pool, line=1)
    for event in history.events:
        _check_event(event)
    _check_threads(history.events)


def _check_pool(pool: Pool, line: int | None) -> None:
    if isinstance(pool.maxsize, bool) or not isinstance(pool.maxsize, int) or pool.maxsize < 1:
        raise HistoryError(line, f"maxsize must be an int >= 1, not {pool.maxsize!r}")
    if not isinstance(pool.block, bool):
        raise HistoryError(line, f"block must be true or false, not {pool.block!r}")


def _check_event(e: Event) -> None:
    def fail(problem: str) -> HistoryError:
        return HistoryError(e.line, problem)

    if e.op not in OPS:
        raise fail(f"unknown op {e.op!r} (expected one of {', '.join(OPS)})")
    if not e.outcome:
        raise fail("outcome must be a non-empty string")
    if e.ret is None and e.outcome != PENDING:
        raise fail(f'"return" is null but outcome is {e.outcome!r}, not "pending"')
    if e.ret is not None and e.outcome == PENDING:
        raise fail('outcome is "pending" but "return" is not null')
    if e.ret is not None and e.ret < e.call:
        raise fail(f'"return" {e.ret} is before "call" {e.call}')
    if e.op == "get":
        if e.outcome == model.OK and e.conn is None:
            raise fail('a get with outcome "ok" must name its "conn"')
        if e.outcome != model.OK and e.conn is not None:
            raise fail(f'a get with outcome {e.outcome!r} returned no connection: "conn" '
                       "must be null")
    if e.op in ("put", "evict") and e.conn is None:
        raise fail(f'a {e.op} must name its "conn"')
    if e.op == "evict" and (e.pending or e.outcome != model.OK):
        raise fail('an evict happened: its outcome is "ok" and it has a "return"')
    if e.op == "close" and e.conn is not None:
        raise fail('a close has no "conn"')
    if e.pending and e.kept:
        raise fail('a pending put cannot tell whether the pool "kept" the connection')
    if e.op != "put" and (e.kept or e.discard):
        raise fail(f'"kept" and "discard" belong to put, not {e.op}')
    if e.discard and e.kept:
        raise fail('a discarded connection cannot be "kept"')


def _check_threads(events: Iterable[Event]) -> None:
    """A thread makes one call at a time: its calls must not overlap, none after a pending."""
    last: dict[int, Event] = {}
    for e in sorted(events, key=lambda e: (e.thread, e.call)):
        before = last.get(e.thread)
        if before is not None:
            where = f" (line {before.line})" if before.line is not None else ""
            if before.ret is None:
                raise HistoryError(e.line, f"thread {e.thread} calls again after its pending "
                                           f"call{where} that never returned")
            if e.call < before.ret:
                raise HistoryError(e.line, f"thread {e.thread} calls at {e.call} before its "
                                           f"previous call{where} returned at {before.ret}")
        last[e.thread] = e


# -- reading and writing -----------------------------------------------------------------


def load_history(path: str | Path) -> History:
    """Read a JSON Lines history; HistoryError names the first bad line and what is wrong.

    OSError (a missing file, say) propagates: it is not a format problem.
    """
    with open(path, "rb") as stream:
        return _parse_lines(list(_numbered_lines(stream)))


def history_from_lines(lines: Iterable[str]) -> History:
    """``load_history`` for lines already in hand (as ``history_lines`` writes them)."""
    return _parse_lines(list(_numbered_lines(line.encode("utf-8") for line in lines)))


def _parse_lines(lines: list[tuple[int, str]]) -> History:
    if not lines:
        raise HistoryError(1, f"the file is empty; the first line must be like {_HEADER_EXAMPLE}")
    (first_no, first), *rest = lines
    pool = _parse_pool(_parse_json(first, first_no), first_no)
    history = History(pool, tuple(_parse_event(_parse_json(text, no), no) for no, text in rest))
    validate(history)
    return history


def _numbered_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """Non-blank lines with their numbers; a blank line is allowed only at the end."""
    blank: int | None = None
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HistoryError(number, "is not UTF-8 text") from None
        if not text.strip():
            blank = blank or number
            continue
        if blank is not None:
            raise HistoryError(blank, "blank line inside the history")
        yield number, text


def _parse_json(text: str, line: int) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        for key in keys:
            if keys.count(key) > 1:
                raise HistoryError(line, f"field {key!r} appears twice")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise HistoryError(line, f"{name} is not a number JSON allows")

    try:
        value = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise HistoryError(line, f"bad JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(value, dict):
        raise HistoryError(line, f"expected a JSON object, got {type(value).__name__}")
    return cast(dict[str, Any], value)


def _parse_pool(obj: dict[str, Any], line: int) -> Pool:
    if set(obj) != {"pool"} or not isinstance(obj["pool"], dict):
        raise HistoryError(line, f"the first line must describe the pool, like {_HEADER_EXAMPLE}")
    fields = obj["pool"]
    for name in ("maxsize", "block"):
        if name not in fields:
            raise HistoryError(line, f'the pool header has no "{name}"')
    unknown = sorted(set(fields) - {"maxsize", "block"})
    if unknown:
        raise HistoryError(line, f"unknown pool field {unknown[0]!r}")
    pool = Pool(fields["maxsize"], fields["block"])
    _check_pool(pool, line)
    return pool


def _parse_event(obj: dict[str, Any], line: int) -> Event:
    if "pool" in obj:
        raise HistoryError(line, "a second pool header; only the first line describes the pool")
    unknown = sorted(set(obj) - _EVENT_FIELDS)
    if unknown:
        raise HistoryError(line, f"unknown field {unknown[0]!r}")
    for name in ("thread", "op", "outcome", "call", "return"):
        if name not in obj:
            raise HistoryError(line, f'missing field "{name}"')
    op = obj["op"]
    if op not in OPS:
        raise HistoryError(line, f"unknown op {op!r} (expected one of {', '.join(OPS)})")
    if op in ("get", "put", "evict") and "conn" not in obj:
        raise HistoryError(line, f'missing field "conn" (null if the {op} had no connection)')
    if op == "put" and obj["outcome"] == model.OK and not obj.get("discard") and "kept" not in obj:
        raise HistoryError(line, 'missing field "kept": did the pool keep the connection?')
    return Event(
        thread=_integer(obj, "thread", line),
        op=op,
        call=_time(obj, "call", line),
        ret=None if obj["return"] is None else _time(obj, "return", line),
        outcome=_text(obj, "outcome", line),
        conn=None if obj.get("conn") is None else _integer(obj, "conn", line),
        kept=_flag(obj, "kept", line),
        discard=_flag(obj, "discard", line),
        line=line,
    )


def _integer(obj: dict[str, Any], name: str, line: int) -> int:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise HistoryError(line, f'"{name}" must be an integer, not {json.dumps(value)}')
    return value


def _time(obj: dict[str, Any], name: str, line: int) -> float:
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HistoryError(line, f'"{name}" must be a time in seconds, not {json.dumps(value)}')
    return float(value)


def _text(obj: dict[str, Any], name: str, line: int) -> str:
    value = obj[name]
    if not isinstance(value, str) or not value:
        raise HistoryError(line, f'"{name}" must be a non-empty string, not {json.dumps(value)}')
    return value


def _flag(obj: dict[str, Any], name: str, line: int) -> bool:
    value = obj.get(name, False)
    if not isinstance(value, bool):
        raise HistoryError(line, f'"{name}" must be true or false, not {json.dumps(value)}')
    return value


def dump_history(history: History, path: str | Path) -> None:
    """Write ``history`` in the format ``load_history`` reads."""
    Path(path).write_text("\n".join(history_lines(history)) + "\n", encoding="utf-8")


def history_lines(history: History) -> list[str]:
    """``history`` as the lines of its JSON Lines file."""
    lines = [json.dumps({"pool": {"maxsize": history.pool.maxsize,
                                  "block": history.pool.block}})]
    return lines + [json.dumps(_event_json(e)) for e in history.events]


def _event_json(e: Event) -> dict[str, Any]:
    doc: dict[str, Any] = {"thread": e.thread, "op": e.op}
    if e.op != "close":
        doc["conn"] = e.conn
    doc["outcome"] = e.outcome
    if e.op == "put" and not e.discard:
        doc["kept"] = e.kept
    if e.discard:
        doc["discard"] = True
    doc["call"] = e.call
    doc["return"] = e.ret
    return doc


# -- recording a live run ----------------------------------------------------------------


@dataclass
class _Open:
    thread: int
    op: OpName
    call: float
    conn: int | None
    discard: bool
    ret: float | None = None
    outcome: str = PENDING
    kept: bool = False


class Recorder:
    """Thread-safe log of calls as they happen, for ``check`` to judge afterwards.

    Call ``begin`` just before calling the pool and ``end`` just after it returns or
    raises: the recorded interval then contains the moment the call took effect, which is
    all that linearizability needs. A call never ended is recorded as pending.
    """

    def __init__(self, maxsize: int, block: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool = Pool(maxsize, block)
        self._clock = clock
        self._start = clock()
        self._calls: list[_Open] = []
        self._threads: dict[int, int] = {}
        self._lock = threading.Lock()

    def begin(self, op: OpName, conn: int | None = None, *, discard: bool = False,
              thread: int | None = None) -> int:
        """Note a call starting now; returns the ticket ``end`` takes.

        ``conn`` is the connection a put returns; ``thread`` defaults to a small number
        for the calling thread (in order of first appearance).
        """
        now = self._clock() - self._start
        with self._lock:
            if thread is None:
                thread = self._threads.setdefault(threading.get_ident(), len(self._threads))
            self._calls.append(_Open(thread, op, now, conn, discard))
            return len(self._calls) - 1

    def end(self, ticket: int, outcome: str = model.OK, *, conn: int | None = None,
            kept: bool = False) -> None:
        """Note that call ``ticket`` returned now: ``conn`` for a get, ``kept`` for a put."""
        now = self._clock() - self._start
        with self._lock:
            record = self._calls[ticket]
            if record.ret is not None:
                raise RuntimeError(f"call {ticket} has already ended")
            record.ret, record.outcome, record.kept = now, outcome, kept
            if record.op == "get":
                record.conn = conn

    def history(self) -> History:
        """What has been recorded so far; calls still running are pending."""
        with self._lock:
            events = tuple(
                Event(thread=r.thread, op=r.op, call=r.call, ret=r.ret, outcome=r.outcome,
                      conn=r.conn if r.ret is not None or r.op != "get" else None,
                      kept=r.kept, discard=r.discard)
                for r in self._calls)
        return History(self.pool, events)
