"""``poolcheck init DIR``: copy the starter kit (a skeleton pool and its exercise sheet) into DIR.

Two kits ship inside the package: a thread pool (``poolcheck.app``'s ``starter_kit/``) and,
with ``--asyncio``, an asyncio pool (``starter_kit_asyncio/``), both read with
``importlib.resources``, so they are found however poolcheck is installed. A learner's work
is never overwritten: if any file the kit would write is already in DIR, nothing is
written and the command exits with status 2 and one line saying which.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from importlib import resources
from pathlib import Path

KIT_PACKAGE = "poolcheck.app"
KIT_FOLDER = "starter_kit"  # the thread pool's kit
ASYNCIO_KIT_FOLDER = "starter_kit_asyncio"  # the asyncio pool's (init --asyncio)
KIT_FILES = ("pool.py", "EXERCISE.md")  # what init writes, in this order (both kits)
FIRST_CHECKS = ("sequential/bound", "sequential/exclusive", "sequential/no-leak",
                "stress/exclusive")  # what step 1 of EXERCISE.md runs
ASYNCIO_FIRST_CHECKS = FIRST_CHECKS  # step 1 of the asyncio sheet runs the same
EXIT_OK, EXIT_USAGE = 0, 2


def kit_files(asynchronous: bool = False) -> dict[str, bytes]:
    """The kit's files (the asyncio kit's if ``asynchronous``), by name, exactly as
    shipped."""
    folder = ASYNCIO_KIT_FOLDER if asynchronous else KIT_FOLDER
    kit = resources.files(KIT_PACKAGE).joinpath(folder)
    return {name: kit.joinpath(name).read_bytes() for name in KIT_FILES}


def run_init(folder: Path, asynchronous: bool = False) -> int:
    """Write the kit (the asyncio kit if ``asynchronous``) into ``folder`` (created if
    missing); never overwrite a file."""
    if folder.exists() and not folder.is_dir():
        return _error(f"{folder}: exists and is not a folder")
    taken = [folder / name for name in KIT_FILES if (folder / name).exists()]
    if taken:
        return _refuse(taken)
    try:
        files = kit_files(asynchronous)
    except OSError as exc:  # a broken installation: say so in one line
        return _error(f"cannot read the starter kit: {exc.strerror or exc}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _error(f"cannot create {folder}: {exc.strerror or exc}")
    for name, data in files.items():
        try:
            with (folder / name).open("xb") as out:  # "x": fail rather than overwrite
                out.write(data)
        except FileExistsError:  # appeared since we looked
            return _refuse([folder / name])
        except OSError as exc:
            return _error(f"cannot write {folder / name}: {exc.strerror or exc}")
    pool = shlex.quote(str(folder / "pool.py"))
    first = ASYNCIO_FIRST_CHECKS if asynchronous else FIRST_CHECKS
    checks = " ".join(f"--check {name}" for name in first)
    kind = " (the asyncio kit)" if asynchronous else ""
    print(f"poolcheck: wrote {' and '.join(str(folder / n) for n in KIT_FILES)}{kind}")
    print(f"next: read {folder / 'EXERCISE.md'}, do step 1 in {folder / 'pool.py'}, then run")
    print(f"  poolcheck check {pool} {checks}")
    return EXIT_OK


def _refuse(taken: list[Path]) -> int:
    names = ", ".join(str(p) for p in taken)
    return _error(f"{names} already exist{'s' if len(taken) == 1 else ''}; poolcheck init "
                  "never overwrites a file: choose another folder")


def _error(message: str) -> int:
    print(f"poolcheck: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def add_init_parser(
        subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``init`` on the ``poolcheck`` command's subparsers."""
    parser = subparsers.add_parser(
        "init", help="start a pool of your own: copy the starter kit into a folder",
        description="Write into DIR (created if needed) a skeleton pool, pool.py, and "
                    "EXERCISE.md, an exercise sheet that builds it step by step: a "
                    "thread-safe pool, or with --asyncio a pool for asyncio tasks. Nothing "
                    "is overwritten: if either file exists, nothing is written (exit "
                    "status 2).")
    parser.add_argument("folder", type=Path, metavar="DIR",
                        help="where to write pool.py and EXERCISE.md")
    parser.add_argument("--asyncio", action="store_true", dest="asynchronous",
                        help="the asyncio kit: a pool whose get_conn is async def, shared "
                             "by the tasks of one event loop, built in the same five steps "
                             "(waiter futures instead of a Condition), and a sixth on "
                             "cancellation (default: the thread kit)")
    parser.set_defaults(run=lambda args: run_init(args.folder, args.asynchronous))
    return parser
