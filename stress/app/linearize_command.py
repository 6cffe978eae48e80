"""``poolcheck linearize HISTORY``: judge a recorded history and say why.

Exit status (the contract's section 5): 0 linearizable, 1 not linearizable, 3 undecided
within the step budget, 2 the history cannot be read or is malformed (one line naming the
line at fault, never a traceback).
"""

from __future__ import annotations

import argparse
import sys

from poolcheck.app.argtypes import positive_int
from poolcheck.errors import HistoryError
from poolcheck.judge.linearize import DEFAULT_BUDGET, LINEARIZABLE, NOT_LINEARIZABLE, check
from poolcheck.judge.linearize_report import format_report, write_html
from poolcheck.observe.history import load_history

EXIT_LINEARIZABLE, EXIT_NOT_LINEARIZABLE, EXIT_MALFORMED, EXIT_UNDECIDED = 0, 1, 2, 3


def run_linearize(path: str, html: str | None, budget: int | None) -> int:
    """Check the history at ``path``, print the report, and return the exit status."""
    if budget is not None and budget < 1:
        return _error(f"--budget must be at least 1, not {budget}")
    try:
        history = load_history(path)
    except HistoryError as exc:
        return _error(f"{path}: {exc}")
    except OSError as exc:
        return _error(f"cannot read {path}: {exc.strerror or exc}")
    result = check(history, DEFAULT_BUDGET if budget is None else budget)
    print(format_report(history, result), end="")
    if html is not None:
        try:
            write_html(history, result, html)
        except OSError as exc:
            return _error(f"cannot write {html}: {exc.strerror or exc}")
        print(f"timeline written to {html}")
    if result.verdict == LINEARIZABLE:
        return EXIT_LINEARIZABLE
    return EXIT_NOT_LINEARIZABLE if result.verdict == NOT_LINEARIZABLE else EXIT_UNDECIDED


def _error(message: str) -> int:
    print(f"poolcheck: error: {message}", file=sys.stderr)
    return EXIT_MALFORMED


def add_linearize_parser(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``linearize`` on the ``poolcheck`` command's subparsers."""
    parser = subparsers.add_parser(
        "linearize", help="check a recorded history for linearizability",
        description="Check that a recorded history (JSON Lines, see the contract's "
                    "section 5) is explained by an order of its calls, consistent with "
                    "real time, that the sequential model accepts. Exit status: "
                    "0 linearizable, 1 not, 2 malformed input, 3 undecided.")
    parser.add_argument("history", help="the history file (JSON Lines)")
    parser.add_argument("--html", metavar="PATH", default=None,
                        help="also write a timeline page to PATH")
    parser.add_argument("--budget", metavar="N", type=positive_int, default=None,
                        help=f"give up (undecided) after N model steps "
                             f"(default {DEFAULT_BUDGET:,})")
    parser.set_defaults(run=lambda args: run_linearize(args.history, args.html, args.budget))
    return parser
