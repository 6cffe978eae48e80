"""The linearizability verdict for people: a text report and a self-contained HTML page.

Both show the same facts: each thread's calls, where each one sits in the order found,
and, when the history is not linearizable, the longest linearizable prefix and the call
that cannot be placed after it. Large histories are shown around that call only.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from poolcheck import model
from poolcheck.judge.linearize import LINEARIZABLE, NOT_LINEARIZABLE, Result
from poolcheck.observe.history import Event, History

FAILS = "FAILS"
NOT_PLACED = "-"
TABLE_ROWS = 10  # per thread, in a large history
TIMELINE_EVENTS = 24  # at most, around the call that cannot be placed
HTML_EVENTS = 600  # at most, around that call


# -- facts shared by both views ----------------------------------------------------------


def statuses(history: History, result: Result) -> list[str]:
    """Per event: ``#n`` (its place in the order found), FAILS, or what became of it."""
    labels = [NOT_PLACED] * len(history.events)
    for place, index in enumerate(result.prefix, start=1):
        labels[index] = f"#{place}"
    for index, event in enumerate(history.events):
        if index in result.effects:
            labels[index] += f" as {_effect(result.effects[index], history)}"
        elif event.pending and result.verdict == LINEARIZABLE:
            labels[index] = "no effect"
    if result.failed is not None:
        labels[result.failed] = FAILS
    return labels


def _effect(call: model.Call, history: History) -> str:
    """How a pending call took effect, e.g. ``get -> 3`` or ``put 2 kept``."""
    if call.op == "get":
        return f"get -> {_conn(call.conn, history)}"
    if call.op == "put":
        return f"put {call.conn} {'kept' if call.kept else 'closed'}"
    if call.op == "discard":
        return f"put {call.conn} discard"
    return call.op


def _conn(conn: int | None, history: History) -> str:
    recorded = any(e.conn == conn for e in history.events)
    return str(conn) if recorded else "new"


def focus(history: History, result: Result) -> int | None:
    """The event to show the history around: the failed call, or the first one unplaced."""
    if result.failed is not None:
        return result.failed
    if result.verdict == LINEARIZABLE:
        return None
    placed = set(result.prefix)
    unplaced = [i for i, e in enumerate(history.events) if i not in placed and not e.pending]
    return min(unplaced, key=lambda i: (history.events[i].call, i), default=None)


def around(history: History, center: int, count: int) -> list[int]:
    """About ``count`` events nearest ``center`` in call order, and all that overlap it."""
    events = history.events
    by_call = sorted(range(len(events)), key=lambda i: (events[i].call, i))
    pos = by_call.index(center)
    mid = events[center]
    end = math.inf if mid.ret is None else mid.ret

    def overlaps(e: Event) -> bool:
        return e.call <= end and (e.ret is None or e.ret >= mid.call)

    chosen = set(by_call[max(0, pos - count * 2 // 3): pos + count // 3 + 1])
    chosen |= {i for i in by_call[max(0, pos - count * 4): pos + count * 4]
               if overlaps(events[i])}
    place = {i: n for n, i in enumerate(by_call)}
    nearest = sorted(chosen, key=lambda i: abs(place[i] - pos))[:count]
    return sorted(nearest, key=lambda i: (events[i].call, i))


def _where(event: Event, index: int) -> str:
    return f"line {event.line}" if event.line is not None else f"event {index}"


def _state(state: model.State, history: History) -> str:
    def names(conns: Iterable[int]) -> str:
        shown = [_conn(c, history) for c in sorted(conns)]
        return "{" + ", ".join(shown) + "}" if shown else "none"

    return (f"idle {names(state.idle)}, checked out {names(state.out)}, "
            f"{'closed' if state.closed else 'open'}")


# -- text --------------------------------------------------------------------------------


def format_report(history: History, result: Result) -> str:
    """The report ``poolcheck linearize`` prints."""
    labels = statuses(history, result)
    center = focus(history, result)
    parts = [_headline(history, result), _explanation(history, result)]
    if center is not None:
        parts.append(_timeline(history, labels, around(history, center, TIMELINE_EVENTS)))
    parts.append(_tables(history, labels, center))
    return "\n\n".join(parts) + "\n"


def _headline(history: History, result: Result) -> str:
    return f"poolcheck linearize: {result.verdict.upper()}\n{_summary(history, result)}"


def _summary(history: History, result: Result) -> str:
    pool = history.pool
    pending = sum(e.pending for e in history.events)
    threads = len(history.threads)
    return (f"pool maxsize={pool.maxsize} block={str(pool.block).lower()}: "
            f"{_calls(len(history.events))} by {threads} thread{'' if threads == 1 else 's'} "
            f"({pending} pending); {result.steps:,} model steps of a budget of "
            f"{result.budget:,}")


def _explanation(history: History, result: Result) -> str:
    completed = sum(not e.pending for e in history.events)
    if result.verdict == LINEARIZABLE:
        took = len(result.effects)
        return (f"An order of the {completed} completed calls that respects real time is "
                f"accepted by the model; {took} of the pending calls took effect in it.")
    placed = (f"The longest linearizable prefix found places {_calls(len(result.prefix))}; "
              f"after it the pool has {_state(result.state, history)}.")
    if result.verdict != NOT_LINEARIZABLE or result.failed is None:
        return (f"The search used its whole budget of {result.budget:,} model steps without "
                f"deciding (raise it with --budget).\n{placed}")
    event = history.events[result.failed]
    why = (f"  the model refuses it in that state ({result.reason.invariant}): "
           f"{result.reason.reason}\n  (that state follows the order the search got "
           "furthest with; the bug may lie earlier, in calls placed differently)"
           if result.reason is not None else
           "  the model accepts it here, but no order of the calls after it works")
    return (f"No order of the calls that respects real time is accepted by the model.\n"
            f"{placed}\nThe first call that cannot be placed after it:\n"
            f"  {_where(event, result.failed)}: thread {event.thread} {event.describe()}, "
            f"called at {event.call:.6f}, returned at {_time(event.ret)}\n{why}")


def _calls(count: int) -> str:
    return f"{count} call" if count == 1 else f"{count} calls"


def _time(t: float | None) -> str:
    return "never" if t is None else f"{t:.6f}"


def _timeline(history: History, labels: Sequence[str], shown: list[int]) -> str:
    """Call (>) and return (<) points in time order, one column per thread."""
    events = history.events
    threads = sorted({events[i].thread for i in shown})
    points = sorted([(events[i].call, 0, i) for i in shown] +
                    [(t, 1, i) for i in shown if (t := events[i].ret) is not None])
    widths = {t: 2 + max(len(f"thread {t}"), *(len(_mark(events[i], labels[i]))
                                               for i in shown if events[i].thread == t))
              for t in threads}
    running: set[int] = set()  # threads inside a call

    def row(first: str, cells: dict[int, str]) -> str:
        line = first.rjust(10) + "  " + "".join(
            cells.get(t, "|" if t in running else "").ljust(widths[t]) for t in threads)
        return line.rstrip()

    rows = [row("", {t: f"thread {t}" for t in threads})]
    for time, is_return, index in points:
        thread = events[index].thread
        rows.append(row(f"{time:.6f}",
                        {thread: "<" if is_return else _mark(events[index], labels[index])}))
        (running.discard if is_return else running.add)(thread)
    if running:
        rows.append(row("", {t: "|  (pending)" for t in running}))
    return ("Timeline around it (> a call begins, < it returns, | it runs; #n: its place "
            "in the prefix):\n" + "\n".join(rows))


def _mark(event: Event, label: str) -> str:
    """The mark first, so a narrow column cuts the call's description rather than it."""
    return f"> {event.describe()}" if label == NOT_PLACED else f"> {label} {event.describe()}"


def _tables(history: History, labels: Sequence[str], center: int | None) -> str:
    """Each thread's calls in order, with what became of each one."""
    events = history.events
    small = len(events) <= TABLE_ROWS * 6
    blocks = []
    for thread in history.threads:
        mine = sorted((i for i, e in enumerate(events) if e.thread == thread),
                      key=lambda i: events[i].call)
        shown, before, after = _rows_around(mine, events, center, None if small else TABLE_ROWS)
        rows = [f"thread {thread} ({_calls(len(mine))})",
                f"  {'where':>10}  {'called':>12}  {'returned':>12}  {'call':<22} order"]
        if before:
            rows.append(f"  ... {before} earlier calls")
        rows += [f"  {_where(events[i], i):>10}  {events[i].call:>12.6f}  "
                 f"{_time(events[i].ret):>12}  {events[i].describe():<22} {labels[i]}"
                 for i in shown]
        if after:
            rows.append(f"  ... {after} later calls")
        blocks.append("\n".join(rows))
    return "Calls by thread:\n" + "\n".join(blocks)


def _rows_around(mine: list[int], events: Sequence[Event], center: int | None,
                 limit: int | None) -> tuple[list[int], int, int]:
    """At most ``limit`` of a thread's calls, around the focus time (else the last ones)."""
    if limit is None or len(mine) <= limit:
        return mine, 0, 0
    at = math.inf if center is None else events[center].call
    pos = sum(events[i].call < at for i in mine)
    start = max(0, min(pos - limit // 2, len(mine) - limit))
    return mine[start:start + limit], start, len(mine) - start - limit


# -- HTML --------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 8px}
.verdict-linearizable{color:#1b5e20}.verdict-not{color:#b71c1c}.verdict-undecided{color:#e65100}
pre{background:#f6f6f6;padding:10px;border-radius:4px;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:16px}
.swatch{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}
.chart{overflow-x:auto;border:1px solid #ccc;border-radius:4px;margin-top:12px}
.lanes{position:relative}
.lane{position:relative;height:36px;border-bottom:1px solid #eee}
.label{position:sticky;left:0;z-index:2;display:inline-block;width:80px;height:36px;
line-height:36px;padding-left:8px;background:#fafafa;border-right:1px solid #ddd;
font-weight:600}
.bar{position:absolute;top:7px;height:20px;border-radius:3px;font-size:11px;
line-height:20px;padding:0 3px;overflow:hidden;white-space:nowrap;box-sizing:border-box}
.placed{background:#c8e6c9;border:1px solid #2e7d32}
.unplaced{background:#eeeeee;border:1px solid #9e9e9e;color:#555}
.failed{background:#ff8a80;border:2px solid #b71c1c;font-weight:700;z-index:1}
.pending{border-style:dashed}
.line{position:absolute;top:0;bottom:0;width:0;border-left:1px dashed #b71c1c;z-index:1}
"""


def write_html(history: History, result: Result, path: str | Path) -> None:
    """A page with one lane per thread and each call as a bar over (ordinal) time."""
    Path(path).write_text(render_html(history, result), encoding="utf-8")


def render_html(history: History, result: Result) -> str:
    labels = statuses(history, result)
    center = focus(history, result)
    indices = list(range(len(history.events)))
    if len(indices) > HTML_EVENTS:
        indices = around(history, center if center is not None else _last(history),
                         HTML_EVENTS)
    verdict_class = {"linearizable": "linearizable", "not linearizable": "not"}.get(
        result.verdict, "undecided")
    jump = ("" if result.failed is None else
            ' <a href="#failed">Jump to the call that cannot be placed.</a>')
    shown = ("" if len(indices) == len(history.events) else
             f"<p>Showing the {len(indices)} calls around the point of interest, "
             f"of {len(history.events)}.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>poolcheck linearize: {html.escape(result.verdict)}</title>
<style>{_CSS}</style></head><body>
<h1 class="verdict-{verdict_class}">poolcheck linearize: {html.escape(result.verdict)}</h1>
<p>{html.escape(_summary(history, result))}</p>
<pre>{html.escape(_explanation(history, result))}</pre>
<div class="legend"><span><i class="swatch placed"></i>in the linearizable prefix (#n: its
place)</span><span><i class="swatch failed"></i>cannot be placed after it</span>
<span><i class="swatch unplaced"></i>not placed</span><span><i class="swatch unplaced
pending"></i>pending (never returned)</span></div>
<p>Time runs to the right, in order but not to scale: every call and return point gets
its own column, so overlapping calls stay visible however short.{jump}</p>{shown}
<div class="chart">{_lanes(history, result, labels, indices)}</div>
</body></html>
"""


def _last(history: History) -> int:
    return max(range(len(history.events)), key=lambda i: (history.events[i].call, i))


def _lanes(history: History, result: Result, labels: Sequence[str],
           indices: list[int]) -> str:
    events = history.events
    times = sorted({events[i].call for i in indices} |
                   {t for i in indices if (t := events[i].ret) is not None})
    column = {t: n for n, t in enumerate(times)}
    left = 90
    unit = max(22, 900 // max(1, len(times)))
    width = left + unit * (len(times) + 2)
    lanes = []
    for thread in sorted({events[i].thread for i in indices}):
        bars = [_bar(events[i], i, labels[i], result, column, unit, left, len(times))
                for i in indices if events[i].thread == thread]
        lanes.append(f'<div class="lane" style="width:{width}px">'
                     f'<span class="label">thread {thread}</span>{"".join(bars)}</div>')
    marker = ""
    if result.failed is not None and result.failed in indices:
        x = left + unit * column[events[result.failed].call]
        marker = f'<div class="line" style="left:{x}px" title="the failing call begins"></div>'
    return f'<div class="lanes" style="width:{width}px">{marker}{"".join(lanes)}</div>'


def _bar(event: Event, index: int, label: str, result: Result, column: dict[float, int],
         unit: int, left: int, columns: int) -> str:
    start = column[event.call]
    end = columns + 1 if event.ret is None else column[event.ret]
    kind = ("failed" if index == result.failed else
            "unplaced" if label in (NOT_PLACED, "no effect") else "placed")
    if event.pending:
        kind += " pending"
    if not label.startswith("#"):
        text = event.describe()
    else:  # a pending call in the prefix shows the effect it was given instead
        text = f"{label} (pending)" if event.pending else f"{label} {event.describe()}"
    tip = (f"{_where(event, index)}: thread {event.thread} {event.describe()}\n"
           f"called {event.call:.6f}, returned {_time(event.ret)}\n{label}")
    if index == result.failed and result.reason is not None:
        tip += f"\n{result.reason.invariant}: {result.reason.reason}"
    style = f"left:{left + unit * start}px;width:{max(unit * (end - start), 8)}px"
    anchor = ' id="failed"' if index == result.failed else ""
    return (f'<div class="bar {kind}"{anchor} style="{style}" title="{html.escape(tip)}">'
            f"{html.escape(text)}</div>")
