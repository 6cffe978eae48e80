"""Turn a TARGET (``file.py:Name`` or ``module:Name``) into a pool class, or say why not."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poolcheck.errors import LoadError
from poolcheck.load import adapters
from poolcheck.load.asyncio_facade import AsyncFacade

DEFAULT_TARGET = "poolcheck.pool:Pool"
REQUIRED = ("get_conn", "put_conn")
LIBRARIES = ("dbutils", "httpcore", "psycopg", "psycopg_pool", "redis", "sqlalchemy",
             "urllib3")  # what the adapters drive


@dataclass(frozen=True)
class Target:
    spec: str
    cls: type
    has_close: bool
    adapter: str = "native"  # a name from poolcheck.load.adapters.ADAPTERS

    @classmethod
    def of(cls, pool_class: type, adapter: str = "auto") -> Target:
        """A target for a class already in hand (tests, the pytest plugin). ``auto``
        detects the interface, and falls back on native when there is none to detect."""
        name = f"{pool_class.__module__}:{pool_class.__qualname__}"
        chosen = (adapters.detect(pool_class) or "native") if adapter == "auto" else adapter
        return cls(name, pool_class, adapters.ADAPTERS[chosen].has_close(pool_class), chosen)

    @property
    def command_spec(self) -> str:
        """TARGET as a command line names it, with ``--adapter`` when auto would differ."""
        if adapters.detect(self.cls) == self.adapter:
            return self.spec
        return f"{self.spec} --adapter {self.adapter}"

    @property
    def asynchronous(self) -> bool:
        """An asyncio pool: driven on an event loop (``poolcheck.run.aio``)."""
        return adapters.ADAPTERS[self.adapter].asynchronous

    @property
    def modes(self) -> frozenset[bool]:
        """The values of ``block`` the pool can be checked in (redis: only True)."""
        return adapters.ADAPTERS[self.adapter].modes

    def make(self, maxsize: int, block: bool, timeout: float | None, factory: Any,
             *, on_loop: bool = False) -> Any:
        """A pool with the native interface whose connections come from ``factory``. An
        asyncio pool comes behind a blocking facade, unless ``on_loop`` (the caller runs
        the event loop and hands a coroutine function as ``factory``)."""
        adapter = adapters.ADAPTERS[self.adapter]
        if adapter.asynchronous and not on_loop:
            return AsyncFacade.build(
                lambda connect: adapter.build(self.cls, maxsize, block, timeout, connect),
                factory)
        return adapter.build(self.cls, maxsize, block, timeout, factory)


def load(spec: str | None, adapter: str = "auto") -> Target:
    _known_adapter(adapter)
    chosen = adapters.ADAPTERS.get(adapter)
    if not spec:
        spec = chosen.default_target if chosen and chosen.default_target else DEFAULT_TARGET
    where, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if not where:
        raise LoadError(f"{spec!r}: expected path/to/file.py:Name or package.module:Name")
    module = _import(where)
    cls = _pick_class(module, name, spec, chosen)
    if chosen is None:
        detected = adapters.detect(cls)
        if detected is None:
            missing = adapters.missing_methods(adapters.ADAPTERS["native"], cls)
            top = cls.__module__.split(".")[0]
            fits = [a.name for a in adapters.ADAPTERS.values()
                    if a.library == top and not adapters.missing_methods(a, cls)
                    and a.asynchronous == inspect.iscoroutinefunction(
                        getattr(cls, a.methods[0]))]
            raise LoadError(
                f"{spec}: {cls.__name__} has no {' or '.join(missing)}; a pool needs "
                "get_conn(timeout=None) and put_conn(conn) (see docs/CONTRACT.md), or "
                "_get_conn and _put_conn in urllib3's style" + (
                    f"; {top}'s pools have adapters: --adapter {' or --adapter '.join(fits)}"
                    " (docs/ADAPTERS.md)" if fits else ""))
        chosen = adapters.ADAPTERS[detected]
    _check_drivable(spec, cls, chosen)
    return Target(spec, cls, chosen.has_close(cls), chosen.name)


def target_of(pool_class: type, adapter: str = "auto") -> Target:
    """A target for a class already in hand (a script, the pytest plugin), refused for the
    same reasons ``load`` refuses a TARGET string."""
    _known_adapter(adapter)
    target = Target.of(pool_class, adapter)
    _check_drivable(target.spec, pool_class, adapters.ADAPTERS[target.adapter])
    return target


def _known_adapter(adapter: str) -> None:
    if adapter != "auto" and adapter not in adapters.ADAPTERS:
        raise LoadError(f"unknown adapter {adapter!r} (one of auto, "
                        f"{', '.join(adapters.ADAPTERS)})")


def _check_drivable(spec: str, cls: type, chosen: adapters.Adapter) -> None:
    missing = adapters.missing_methods(chosen, cls)
    if missing:
        needs = {"native": "a pool needs get_conn(timeout=None) and put_conn(conn) "
                           "(see docs/CONTRACT.md)"}.get(
            chosen.name, f"--adapter {chosen.name} needs {', '.join(chosen.methods)}")
        raise LoadError(f"{spec}: {cls.__name__} has no {' or '.join(missing)}; {needs}")
    if chosen.needs and importlib.util.find_spec(chosen.needs) is None:
        raise LoadError(f"{spec}: --adapter {chosen.name} needs {chosen.needs!r}, which is "
                        f"not installed: pip install {chosen.needs}")
    if chosen.name == "urllib3" and not adapters.makes_connections(cls):
        raise LoadError(f"{spec}: {cls.__name__} has neither ConnectionCls nor _new_conn(), "
                        "so the urllib3 adapter cannot give it the checker's connections")
    asynchronous = inspect.iscoroutinefunction(getattr(cls, "get_conn", None))
    if chosen.name in ("native", "asyncio") and asynchronous != chosen.asynchronous:
        raise LoadError(f"{spec}: {cls.__name__}.get_conn is "
                        f"{'a coroutine function' if asynchronous else 'not a coroutine function'}"
                        f": use --adapter {'asyncio' if asynchronous else 'native'} (or auto)")
    problem = chosen.signature_problem(cls)
    if problem:
        raise LoadError(f"{spec}: {problem}")


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
    if os.getcwd() not in sys.path:  # a module of the current folder, found last so that
        sys.path.append(os.getcwd())  # it shadows nothing installed (the child runs -I)
    return _guarded(lambda: importlib.import_module(where), where)


def _guarded(fn: Any, where: str) -> Any:
    try:
        return fn()
    except SyntaxError as exc:
        raise LoadError(f"{exc.filename or where}:{exc.lineno}: syntax error: {exc.msg}") from None
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root in LIBRARIES:
            raise LoadError(f"{where}: cannot import {exc.name!r}, which is not installed: "
                            f"pip install {root}") from None
        raise LoadError(f"{where}: cannot import {exc.name!r} (is it installed, is the "
                        "name right?)") from None
    except Exception as exc:
        raise LoadError(f"{where}: importing it raised {type(exc).__name__}: {exc}") from None


def _pick_class(module: Any, name: str, spec: str, adapter: adapters.Adapter | None) -> type:
    if name:
        obj = getattr(module, name, None)
        if obj is None:
            raise LoadError(f"{spec}: {module.__name__} has no {name!r}")
        if not inspect.isclass(obj):
            raise LoadError(f"{spec}: {name} is not a class")
        return obj
    kinds = [adapter] if adapter else [adapters.ADAPTERS[a] for a in adapters.AUTO]
    pools = [obj for obj in vars(module).values()
             if inspect.isclass(obj) and obj.__module__ == module.__name__
             and any(all(hasattr(obj, m) for m in kind.methods) for kind in kinds)]
    if len(pools) != 1:
        found = ", ".join(p.__name__ for p in pools) or "none"
        methods = " or ".join(" and ".join(kind.methods) for kind in kinds)
        raise LoadError(f"{spec}: name the pool class as {spec}:Name "
                        f"(classes with {methods}: {found})")
    return pools[0]
