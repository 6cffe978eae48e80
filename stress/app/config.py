"""An instructor's grading config: which checks count, their weights, which stay hidden.

A small TOML file::

    [weights]                    # a check counts only if a pattern here matches its name
    "sequential/*" = 1           # fnmatch patterns; the last pattern that matches wins
    "stress/*" = 2
    "stress/timeout" = 0         # 0: not run, not counted

    [hidden]                     # results learners see only after the deadline
    checks = ["parallel/*"]

    [invariants]                 # your own (@poolcheck.invariant), paths from this file
    files = ["invariants.py"]    # each is the check stress/NAME, weighed like the others

Every mistake in it (an unknown key, a pattern that matches no check, a weight that is
negative or not a number, TOML that does not parse) is one clear line, never a traceback.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from poolcheck.errors import ConfigError, PoolcheckError
from poolcheck.judge.user import UserInvariant, load_invariants
from poolcheck.run.checks import all_checks, default_checks


@dataclass(frozen=True)
class Grading:
    """Default: every check that runs by default counts 1 point, nothing hidden."""

    weights: dict[str, float] = field(
        default_factory=lambda: {c.name: 1.0 for c in all_checks()})
    hidden: frozenset[str] = frozenset()
    configured: bool = False  # from a file: exactly its checks run, opt-in ones included
    invariants: tuple[UserInvariant, ...] = ()  # user invariants: checks stress/NAME

    def with_invariants(self, extra: list[UserInvariant]) -> Grading:
        """The config with user invariants named on the command line: each counts 1 point
        unless the config weighs it."""
        taken = {i.name for i in self.invariants}
        added = tuple(i for i in extra if i.name not in taken)
        if len(added) < len(extra):
            raise ConfigError(f"--invariants: {next(i.name for i in extra if i.name in taken)!r}"
                              " is registered twice (in the config's [invariants] too)")
        weights = {**{i.check_name: 1.0 for i in added}, **self.weights}
        return Grading(weights, self.hidden, self.configured, self.invariants + added)

    def chosen_invariants(self, only: list[str] | None) -> list[UserInvariant]:
        """The user invariants that count, of those named with ``--check`` if any."""
        return [i for i in self.invariants if self.weight(i.check_name) > 0
                and (not only or i.check_name in only)]

    @property
    def checks(self) -> list[str]:
        """The checks to run, in the usual order."""
        defaults = set(default_checks())
        return [c.name for c in all_checks() if self.weights.get(c.name, 0.0) > 0
                and (self.configured or c.name in defaults)]

    def select(self, only: list[str] | None) -> list[str]:
        """The checks to run when the user also named some (``--check``); without a
        config, a named check runs even if it is opt-in. Empty: none of them counts."""
        if not only:
            return self.checks
        only = [n for n in only if not n.startswith("stress/") or n in
                {c.name for c in all_checks()}]  # user invariants: chosen_invariants
        if not only:
            return []
        if self.configured:
            return [c for c in self.checks if c in only]
        return [c.name for c in all_checks() if c.name in only]

    def weight(self, check: str) -> float:
        return self.weights.get(check, 0.0 if self.configured else 1.0)


def load_config(path: Path) -> Grading:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    return parse_config(doc, where, path.parent)


def parse_config(doc: dict[str, Any], where: str = "config",
                 base: Path | None = None) -> Grading:
    unknown = sorted(set(doc) - {"weights", "hidden", "invariants"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)} "
                          "(expected [weights], [hidden] and [invariants])")
    invariants = _invariants(doc.get("invariants", {}), where, base or Path.cwd())
    names = [c.name for c in all_checks()] + [i.check_name for i in invariants]
    table = doc.get("weights")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: [weights] is missing or empty; it says which checks "
                          'count, e.g. "sequential/*" = 1')
    weights: dict[str, float] = {}
    for pattern, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ConfigError(f"{where}: weight of {pattern!r} must be a number, "
                              f"not {value!r}")
        if value < 0:
            raise ConfigError(f"{where}: weight of {pattern!r} is negative ({value}); "
                              "use 0 to leave a check out")
        for name in _matching(pattern, names, where, "weights"):
            weights[name] = float(value)
    hidden_table = doc.get("hidden", {})
    if not isinstance(hidden_table, dict) or set(hidden_table) - {"checks"}:
        raise ConfigError(f'{where}: [hidden] takes one key, checks = ["pattern", ...]')
    patterns = hidden_table.get("checks", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"{where}: [hidden] checks must be a list of check names or "
                          "patterns")
    hidden = {name for p in patterns for name in _matching(p, names, where, "hidden")}
    grading = Grading(weights, frozenset(hidden), configured=True,
                      invariants=tuple(invariants))
    if not grading.checks and not grading.chosen_invariants(None):
        raise ConfigError(f"{where}: every weight is 0: no check would run")
    return grading


def _invariants(table: object, where: str, base: Path) -> list[UserInvariant]:
    if not isinstance(table, dict) or set(table) - {"files"}:
        raise ConfigError(f'{where}: [invariants] takes one key, files = ["path.py", ...]')
    files = table.get("files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{where}: [invariants] files must be a list of paths")
    try:
        return load_invariants(base / f for f in files)
    except PoolcheckError as exc:
        raise ConfigError(f"{where}: [invariants] {exc}") from None


def _matching(pattern: str, names: list[str], where: str, section: str) -> list[str]:
    found = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    if not found:
        raise ConfigError(f"{where}: [{section}] {pattern!r} matches no check (checks are "
                          "named like sequential/bound, stress/wakeup, "
                          "parallel/linearizable; see poolcheck check --help)")
    return found
