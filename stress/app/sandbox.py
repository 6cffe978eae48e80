"""Where an untrusted pool runs: a scratch copy of its submission, nothing else of ours.

``confine`` builds a bubblewrap (``bwrap``) command around the child: a new PID, network,
IPC and UTS namespace; an empty root in which only the system's folders, the Python that
runs poolcheck and its packages are bound, read-only; a private ``/tmp``; and, at the
submission's own path, a scratch copy of that submission (so paths in tracebacks and
reproduce lines are the real ones, and the neighbours, the grading config and the reports
simply are not there). The child drops to an unprivileged user and sets its limits itself
(``isolation.confine_child``) before it imports the target, so a pool never runs with them
lifted. Killing the namespace's first process ends every process in it: a new session is
no escape.

Where the machine lacks a mechanism, ``Confinement.missing`` says which protection was
not in force, and the reports repeat it.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import secrets
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from poolcheck.errors import UsageError

UIDS = (100_000, 2**31 - 2)  # a child of root runs as a user of its own, drawn from here:
# no file on the machine is that user's, no other process is (a process limit counts per
# user, so one child's fork flood cannot starve another's threads)
COPY_LIMIT = 16 * 1024 * 1024  # bytes of a submission copied into its scratch folder
TMP_SIZE = 64 * 1024 * 1024  # bytes of the private /tmp (memory, not disk)
SYSTEM = ("/usr", "/bin", "/lib", "/lib32", "/lib64", "/etc/alternatives",
          "/etc/ld.so.cache", "/etc/localtime")


class Protection(str, enum.Enum):
    """One protection of the sandbox, as the reports name it."""

    FILES = "sees only a copy of its submission (no neighbours, config or reports)"
    NETWORK = "no network"
    PROCESSES = "every process it starts ends with its check"
    USER = "runs as a user of its own, with its own process limit"

    def __str__(self) -> str:
        return self.value


@dataclass
class Confinement:
    """How one child is confined: the command before ``python``, and what to undo."""

    prefix: list[str]  # bwrap and its arguments, or nothing
    scratch: Path | None = None  # removed when the child is over
    user: int | None = None  # uid (and gid) the child becomes before it loads the target
    missing: tuple[Protection, ...] = ()  # protections not in force on this machine
    info_fd: int | None = None  # bwrap's --info-fd: the namespace's first process
    _info_read: int | None = field(default=None, repr=False)

    def started(self, timeout: float = 10.0) -> int | None:
        """The pid (outside) of the namespace's first process, which bwrap reports."""
        if self.info_fd is not None:
            os.close(self.info_fd)
            self.info_fd = None
        if self._info_read is None:
            return None
        data, deadline = b"", time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([self._info_read], [], [],
                                            max(0.0, deadline - time.monotonic()))
                chunk = os.read(self._info_read, 4096) if ready else b""
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(self._info_read)
            self._info_read = None
        try:
            pid = json.loads(data.decode()).get("child-pid")
        except (ValueError, UnicodeDecodeError, AttributeError):
            return None
        return pid if isinstance(pid, int) and pid > 1 else None

    def close(self) -> None:
        for fd in (self.info_fd, self._info_read):
            if fd is not None:
                os.close(fd)
        self.info_fd = self._info_read = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None


@dataclass(frozen=True)
class Sandboxing:
    """What to confine a child to: asked for by ``grade`` (always) and ``check --sandbox``."""

    expose: Path | None = None  # see ``confine``
    hide: tuple[Path, ...] = ()

    def confine(self, spec: str) -> Confinement:
        return confine(spec, self.expose, self.hide)


def confine(spec: str, expose: Path | None = None, hide: tuple[Path, ...] = ()
            ) -> Confinement:
    """A sandbox for the child that loads TARGET ``spec``. ``expose``: the file or folder
    the child may see (default: the target's file; a module target sees only installed
    packages); ``hide``: folders kept out of its sight even where they lie inside a bound
    folder (the submissions, the reports). It writes only in its copy and its /tmp."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:  # the limits still hold: the child sets them itself
        return Confinement([], missing=(Protection.FILES, Protection.NETWORK,
                                        Protection.PROCESSES, Protection.USER))
    root = os.geteuid() == 0
    user = secrets.SystemRandom().randint(*UIDS) if root else None
    where = spec.rpartition(":")[0] if ":" in spec else spec
    # absolute, links kept: the child opens the path as the spec names it
    source = Path(os.path.abspath(where)) if where.endswith(".py") else None
    if expose is None and source is not None:
        expose = source
    scratch = Path(tempfile.mkdtemp(prefix="poolcheck-sandbox-"))
    try:
        args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--die-with-parent", "--new-session",
                "--size", str(TMP_SIZE), "--perms", "1777", "--tmpfs", "/tmp",
                "--dev", "/dev", "--proc", "/proc",
                # nothing of the grader's environment (tokens, paths) reaches the pool
                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
                "--setenv", "TMPDIR", "/tmp", "--setenv", "LC_ALL", "C.UTF-8"]
        made: set[str] = {"/", "/tmp", "/dev", "/proc"}  # folders that exist in the sandbox
        bound: set[str] = set()  # folders bound whole: everything inside them exists
        binds, links = _bound()
        for link, to in links:
            args += [*_dirs(Path(link).parent, made, bound), "--symlink", to, link]
        for path in sorted(binds, key=lambda p: (len(Path(p).parts), p)):
            args += [*_dirs(Path(path).parent, made, bound), "--ro-bind", path, path]
            bound.add(path)
        for path in sorted(str(p.resolve()) for p in hide):
            if _inside(path, bound):
                args += ["--perms", "0755", "--tmpfs", path]
                made.add(path)
        if expose is not None:
            exposed = Path(os.path.abspath(expose))
            copy = _copy(exposed, scratch / "work")
            at = exposed if exposed.is_dir() else exposed.parent
            args += [*_dirs(at.parent, made, bound), "--bind", str(copy), str(at)]
            made.add(str(at))
        cwd = os.getcwd()
        args += [*_dirs(Path(cwd), made, bound), "--chdir", cwd]
        if user is not None:
            os.chown(scratch, user, user)
            for folder, dirs, files in os.walk(scratch):
                for name in dirs + files:
                    os.chown(os.path.join(folder, name), user, user)
        read_fd, write_fd = os.pipe()
        args += ["--info-fd", str(write_fd)]
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return Confinement(args, scratch, user, () if root else (Protection.USER,), write_fd,
                       read_fd)


def _inside(path: str, folders: set[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _dirs(path: Path, made: set[str], bound: set[str]) -> list[str]:
    """bwrap arguments creating ``path`` and its parents, readable by the child (bwrap
    makes the folders it needs 0700), unless they exist already."""
    args: list[str] = []
    for folder in [*reversed(path.parents), path]:
        name = str(folder)
        if name in made or _inside(name, bound):
            continue
        args += ["--perms", "0755", "--dir", name]
        made.add(name)
    return args


@functools.cache
def _bound() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """What the child needs to run poolcheck: the system, this Python, its packages; and
    the system's links (``/lib`` to ``usr/lib``: the ELF loader is named through them)."""
    import poolcheck.model
    import poolcheck.pool

    found = subprocess.run([sys.executable, "-I", "-c",
                            "import sys, json; print(json.dumps(sys.path))"],
                           capture_output=True, text=True, timeout=60, check=True)
    paths = {*json.loads(found.stdout), sys.prefix, sys.base_prefix, sys.exec_prefix,
             str(Path(sys.executable).resolve().parent.parent),
             str(Path(__file__).resolve().parents[1]),  # the package poolcheck itself
             *(str(Path(m.__file__ or "").resolve().parent)
               for m in (poolcheck.pool, poolcheck.model))}
    links = tuple((p, os.readlink(p)) for p in SYSTEM if os.path.islink(p))
    paths.update(p for p in SYSTEM if not os.path.islink(p))
    existing = sorted({str(Path(p).resolve()) for p in paths if p and os.path.exists(p)})
    # a folder inside another bound folder is bound already
    return tuple(p for p in existing if not _inside(p, set(existing) - {p})), links


def _copy(source: Path, into: Path) -> Path:
    """A copy of a submission (a file, or a folder of its own) in the scratch folder."""
    into.mkdir()
    if source.is_file():
        if source.stat().st_size > COPY_LIMIT:
            raise UsageError(f"{source}: larger than {COPY_LIMIT // 2**20} MiB")
        shutil.copy2(source, into / source.name)
        return into
    total = 0
    for folder, _, files in os.walk(source):  # links to folders are not followed
        here = into / Path(folder).relative_to(source)
        here.mkdir(exist_ok=True)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or not path.is_file():
                continue  # a link could name a neighbour's file
            total += path.stat().st_size
            if total > COPY_LIMIT:
                raise UsageError(f"{source}: larger than {COPY_LIMIT // 2**20} MiB")
            shutil.copy2(path, here / name)
    return into
