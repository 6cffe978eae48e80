"""Turn a TARGET (``file.py:Name`` or ``module:Name``) into a pool class, or say why not."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TARGET = "pool:Pool"
REQUIRED = ("get_conn", "put_conn")


class LoadError(Exception):
    """The target cannot be checked; the message is one line for the user."""


@dataclass(frozen=True)
class Target:
    spec: str
    cls: type
    has_close: bool

    @classmethod
    def of(cls, pool_class: type) -> Target:
        """A target for a class already in hand (tests, the pytest plugin)."""
        name = f"{pool_class.__module__}:{pool_class.__qualname__}"
        return cls(name, pool_class, callable(getattr(pool_class, "close", None)))

    def make(self, maxsize: int, block: bool, timeout: float | None, factory: Any) -> Any:
        return self.cls("127.0.0.1", 80, maxsize=maxsize, block=block, timeout=timeout,
                        connection_factory=factory)


def load(spec: str | None) -> Target:
    spec = spec or DEFAULT_TARGET
    where, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not where:
        raise LoadError(f"{spec!r}: expected path/to/file.py:Name or package.module:Name")
    module = _import(where)
    cls = _pick_class(module, name, spec)
    missing = [m for m in REQUIRED if not callable(getattr(cls, m, None))]
    if missing:
        raise LoadError(
            f"{spec}: {cls.__name__} has no {' or '.join(missing)}; "
            "a pool needs get_conn(timeout=None) and put_conn(conn) (see CONTRACT.md)"
        )
    _check_signature(cls, spec)
    return Target(spec, cls, callable(getattr(cls, "close", None)))


def _import(where: str) -> Any:
    path = Path(where)
    if where.endswith(".py") or "/" in where or "\\" in where:
        if not path.is_file():
            raise LoadError(f"{where}: no such file")
        name = f"poolcheck_target_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"{where}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.resolve().parent))  # so it can import its neighbours
        _guarded(lambda: spec.loader.exec_module(module), where)
        return module
    return _guarded(lambda: importlib.import_module(where), where)


def _guarded(fn: Any, where: str) -> Any:
    try:
        return fn()
    except SyntaxError as exc:
        raise LoadError(f"{exc.filename or where}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        raise LoadError(f"{where}: cannot import {exc.name!r} (is it installed, is the "
                        "name right?)") from None
    except Exception as exc:
        raise LoadError(f"{where}: importing it raised {type(exc).__name__}: {exc}") from None


def _pick_class(module: Any, name: str, spec: str) -> type:
    if name:
        obj = getattr(module, name, None)
        if obj is None:
            raise LoadError(f"{spec}: {module.__name__} has no {name!r}")
        if not inspect.isclass(obj):
            raise LoadError(f"{spec}: {name} is not a class")
        return obj
    pools = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and obj.__module__ == module.__name__
             and all(hasattr(obj, m) for m in REQUIRED)]
    if len(pools) != 1:
        found = ", ".join(p.__name__ for p in pools) or "none"
        raise LoadError(f"{spec}: name the pool class as {spec}:Name "
                        f"(classes with get_conn and put_conn: {found})")
    return pools[0]


def _check_signature(cls: type, spec: str) -> None:
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    try:
        sig.bind("127.0.0.1", 80, maxsize=1, block=False, timeout=None,
                 connection_factory=None)
    except TypeError as exc:
        raise LoadError(
            f"{spec}: {cls.__name__}{sig} cannot be called as (host, port, *, maxsize, "
            f"block, timeout, connection_factory): {exc}"
        ) from None
