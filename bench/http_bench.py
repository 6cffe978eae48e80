"""The pool against no pool, urllib3 and raw ``http.client``, with threads, on loopback.

Clients, measured side by side in the same run, each sending the same number of requests
per measurement and reading every response to its end:

- ``new-conn``: a new ``http.client.HTTPConnection`` per request, ``Connection: close``
  (what ``urllib.request`` does);
- ``urllib3``: one ``urllib3.HTTPConnectionPool(maxsize=threads, block=True)`` shared by
  the threads, ``.request("GET", path)``;
- ``pool``: one ``pool.Pool(host, port, maxsize=threads, block=True)`` shared by the
  threads, ``.request("GET", path)`` (with one thread: the pool on its own);
- ``raw``: raw ``http.client``, one kept-alive connection per thread (on one thread: the
  floor, no pool at all).

Server: ``tests/server.py``'s ``LocalServer`` on 127.0.0.1, in a child process so that it
does not share the clients' GIL, at 0 ms (``/ok``) and 5 ms (``/slow?ms=5``) latency; it
counts the requests it serves and the connections it accepts, so every run is checked
from the other end of the socket. If ``nginx`` is on the PATH, it is also started on
127.0.0.1 with its own config in a temporary folder (``return 200 "ok\\n";``, one worker),
at 0 ms only: stock nginx has no simple way to wait 5 ms before answering.

Then a micro-benchmark: one checkout and check-in on fake connections (no network), single
thread: ``Pool.get_conn``/``put_conn`` against urllib3's ``_get_conn``/``_put_conn`` and a
bare ``queue.LifoQueue`` ``get``/``put``.

Every number is a median of repeated runs (runs of the clients interleaved), with min and
max; every ratio compares two numbers of the same run. Targets are reported, not asserted.

    python bench/http_bench.py [--quick] [--json PATH] [--plot PATH]
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import urllib3  # noqa: E402
from poolcheck.pool import Pool  # noqa: E402

from tests.server import LocalServer  # noqa: E402

HOST = "127.0.0.1"
NEW_CONN, URLLIB3, POOL, RAW = "new-conn", "urllib3", "pool", "raw"
CLIENTS = (NEW_CONN, URLLIB3, POOL, RAW)
LABELS = {
    NEW_CONN: "http.client, new connection per request",
    URLLIB3: "urllib3 HTTPConnectionPool, shared",
    POOL: "pool.Pool, shared",
    RAW: "http.client, one kept-alive connection per thread",
}
POOLED = (URLLIB3, POOL)  # the clients with a maxsize (= threads)
DASH = "\u2013"  # an en dash, for ranges in the tables
JOIN_TIMEOUT = 120.0  # seconds; only reached when a client hangs

Fetch = Callable[[], tuple[int, bytes]]


@dataclass
class Config:
    threads: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    latencies_ms: list[int] = field(default_factory=lambda: [0, 5])
    requests_fast: int = 5000  # per run at 0 ms, split over the threads
    requests_slow_per_thread: int = 200  # per run and thread at latency > 0
    warmup_fraction: float = 0.1  # one untimed run of this share of requests per cell/client
    repeats: int = 9  # 0 ms runs on 2 cores vary by +-15%: more runs, steadier medians
    checkout_iterations: int = 100_000
    checkout_repeats: int = 5
    # pool sizes for the micro-benchmark, every connection idle: one thread's pool, the largest
    checkout_sizes: list[int] = field(default_factory=lambda: [1, 16])
    nginx: bool = True
    quick: bool = False


QUICK = Config(threads=[1, 4], requests_fast=200, requests_slow_per_thread=10, repeats=3,
               checkout_iterations=5_000, checkout_repeats=3, quick=True)
# the full run takes about 6 minutes on 2 cores


# -- servers ---------------------------------------------------------------------------


@dataclass
class Target:
    """Where a client sends its requests, and the body every good response has."""

    host: str
    port: int
    path: str
    expected: bytes


class Server:
    """A running server: its name, port, the latencies it offers and (maybe) its counters."""

    name = "?"
    description = "?"

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port

    def route(self, latency_ms: int) -> tuple[str, bytes] | None:
        """(path, expected body) for a server latency in ms; None if it cannot do it."""
        return ("/ok", b"ok\n") if latency_ms == 0 else None

    def counters(self) -> tuple[int, int] | None:
        """(connections accepted, requests served) so far, or None if it cannot count."""
        return None


class PythonServer(Server):
    name = "python"
    description = "tests/server.py LocalServer (ThreadingHTTPServer), in a child process"

    def __init__(self, port: int, control: Connection) -> None:
        super().__init__(port)
        self._control = control

    def route(self, latency_ms: int) -> tuple[str, bytes] | None:
        return ("/ok", b"ok\n") if latency_ms == 0 else (f"/slow?ms={latency_ms}", b"slow\n")

    def counters(self) -> tuple[int, int]:
        self._control.send("counters")
        accepted, served = self._control.recv()
        return int(accepted), int(served)

    def errors(self) -> int:
        self._control.send("errors")
        return int(self._control.recv())


def _serve_in_child(control: Connection) -> None:
    """The child process: a LocalServer, answering the parent's questions until told to stop."""
    with LocalServer() as server:
        control.send(server.port)
        while True:
            try:
                message = control.recv()
            except EOFError:  # the parent is gone
                break
            if message == "counters":
                control.send((server.accepted, server.requests))
            elif message == "errors":
                control.send(len(server.stats.errors))
            else:
                break


@contextmanager
def python_server() -> Iterator[PythonServer]:
    """``LocalServer`` in a spawned child process; stopped (and reaped) in a finally."""
    context = multiprocessing.get_context("spawn")
    control, child_end = context.Pipe()
    process = context.Process(target=_serve_in_child, args=(child_end,), daemon=True,
                              name="http_bench server")
    process.start()
    try:
        if not control.poll(60):
            raise RuntimeError("the benchmark server did not start within 60 s")
        yield PythonServer(int(control.recv()), control)
    finally:
        with suppress(OSError):
            control.send("stop")
        process.join(5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        control.close()


class NginxServer(Server):
    name = "nginx"
    description = 'nginx, one worker, location = /ok { return 200 "ok\\n"; }'


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen {host}:{port};
        location = /ok {{ default_type text/plain; return 200 "ok\\n"; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@contextmanager
def nginx_server(binary: str) -> Iterator[NginxServer]:
    """nginx on 127.0.0.1 with its own config in a temporary folder; stopped in a finally."""
    with tempfile.TemporaryDirectory(prefix="http_bench_nginx_") as tmp:
        port = _free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port))
        process = subprocess.Popen([binary, "-p", tmp, "-c", str(conf)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                if process.poll() is not None:
                    log = Path(tmp) / "error.log"
                    tail = log.read_text()[-500:] if log.exists() else ""
                    raise RuntimeError(f"nginx exited with {process.returncode}: {tail.strip()}")
                with suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx did not listen within 10 s")
                time.sleep(0.05)
            yield NginxServer(port)
        finally:
            process.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- clients ---------------------------------------------------------------------------


class Client:
    """One client configuration for one run: ``thread_session`` in each thread, then close."""

    def __init__(self, target: Target, threads: int) -> None:
        self.target = target
        self.threads = threads

    def thread_session(self) -> AbstractContextManager[Fetch]:
        raise NotImplementedError

    def close(self) -> None:
        """Close what the client shares between threads."""


class NewConnectionClient(Client):
    """A new ``HTTPConnection`` per request, ``Connection: close``, as urllib.request does."""

    @contextmanager
    def thread_session(self) -> Iterator[Fetch]:
        host, port, path = self.target.host, self.target.port, self.target.path
        headers = {"Connection": "close"}

        def fetch() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(host, port)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        yield fetch


class SharedPoolClient(Client):
    """One pool shared by the threads, used as its README shows: ``request`` then ``data``."""

    def __init__(self, target: Target, threads: int) -> None:
        super().__init__(target, threads)
        self.pool = self.make_pool(target, threads)

    def make_pool(self, target: Target, threads: int) -> Any:
        raise NotImplementedError

    @contextmanager
    def thread_session(self) -> Iterator[Fetch]:
        pool, path = self.pool, self.target.path

        def fetch() -> tuple[int, bytes]:
            response = pool.request("GET", path)
            return response.status, response.data

        yield fetch

    def close(self) -> None:
        self.pool.close()


class PoolClient(SharedPoolClient):
    """``pool.Pool``, maxsize = threads, block=True."""

    def make_pool(self, target: Target, threads: int) -> Pool:
        return Pool(target.host, target.port, maxsize=threads, block=True)


class Urllib3Client(SharedPoolClient):
    """``urllib3.HTTPConnectionPool`` with its defaults, maxsize = threads, block=True."""

    def make_pool(self, target: Target, threads: int) -> urllib3.HTTPConnectionPool:
        return urllib3.HTTPConnectionPool(target.host, target.port, maxsize=threads,
                                          block=True)


class RawClient(Client):
    """Raw ``http.client``: each thread its own connection, kept alive, no pool."""

    @contextmanager
    def thread_session(self) -> Iterator[Fetch]:
        conn = http.client.HTTPConnection(self.target.host, self.target.port)
        path = self.target.path

        def fetch() -> tuple[int, bytes]:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()

        try:
            yield fetch
        finally:
            conn.close()


CLIENT_CLASSES: dict[str, type[Client]] = {
    NEW_CONN: NewConnectionClient,
    URLLIB3: Urllib3Client,
    POOL: PoolClient,
    RAW: RawClient,
}


# -- one run ---------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # first request sent to last response read, over all threads
    ok: int  # responses with status 200 and the expected body, read to the end
    served: int | None  # requests the server counted (None: the server cannot count)
    connections: int | None  # connections the server accepted during the run
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "ok": self.ok, "served": self.served,
                "connections": self.connections, "errors": self.errors}


def threads_text(n: int | str) -> str:
    return f"{n} thread" if str(n) == "1" else f"{n} threads"


def split(total: int, parts: int) -> list[int]:
    """``total`` requests over ``parts`` threads, as evenly as possible."""
    share, extra = divmod(total, parts)
    return [share + (1 if i < extra else 0) for i in range(parts)]


def measure(server: Server, target: Target, client_name: str, threads: int,
            requests: int) -> Run:
    """One timed run: ``threads`` threads send ``requests`` requests in all, then close."""
    client = CLIENT_CLASSES[client_name](target, threads)
    counts = split(requests, threads)
    oks = [0] * threads
    starts = [0.0] * threads
    ends = [0.0] * threads
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)
    expected = target.expected

    def work(index: int) -> None:
        try:
            with client.thread_session() as fetch:
                barrier.wait()
                ok = 0
                starts[index] = time.perf_counter()
                for _ in range(counts[index]):
                    status, data = fetch()
                    if status == 200 and data == expected:
                        ok += 1
                ends[index] = time.perf_counter()
                oks[index] = ok
        except BaseException as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            barrier.abort()
            ends[index] = time.perf_counter()

    before = server.counters()
    workers = [threading.Thread(target=work, args=(i,), daemon=True, name=f"client-{i}")
               for i in range(threads)]
    try:
        for worker in workers:
            worker.start()
        with suppress(threading.BrokenBarrierError):
            barrier.wait(JOIN_TIMEOUT)
        for worker in workers:
            worker.join(JOIN_TIMEOUT)
            if worker.is_alive():
                raise RuntimeError(f"{client_name} with {threads} threads hung")
    finally:
        client.close()
    after = server.counters()
    seconds = max(ends) - min(s for s in starts if s) if any(starts) else float("nan")
    if before is None or after is None:
        connections = served = None
    else:
        connections, served = after[0] - before[0], after[1] - before[1]
    return Run(seconds, sum(oks), served, connections, errors)


# -- the HTTP benchmark ----------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": list(values)}


def requests_for(config: Config, latency_ms: int, threads: int) -> int:
    if latency_ms == 0:
        return max(config.requests_fast, threads)
    return config.requests_slow_per_thread * threads


def bench_server(server: Server, config: Config,
                 log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every client at every latency the server offers and every thread count."""
    cells: list[dict[str, Any]] = []
    # one global warm-up: the server's code paths, the loopback, the clients' imports
    warm = Target(server.host, server.port, "/ok", b"ok\n")
    for name in CLIENTS:
        measure(server, warm, name, 1, 20)
    for latency in config.latencies_ms:
        route = server.route(latency)
        if route is None:
            log(f"{server.name}: no simple way to answer after {latency} ms, skipped")
            continue
        target = Target(server.host, server.port, *route)
        for threads in config.threads:
            requests = requests_for(config, latency, threads)
            runs: dict[str, list[Run]] = {name: [] for name in CLIENTS}
            warmup = max(threads, int(requests * config.warmup_fraction))
            for name in CLIENTS:
                measure(server, target, name, threads, warmup)
            for repeat in range(config.repeats):
                shift = repeat % len(CLIENTS)  # rotate the order: no client always goes first
                for name in CLIENTS[shift:] + CLIENTS[:shift]:
                    runs[name].append(measure(server, target, name, threads, requests))
            line = []
            for name in CLIENTS:
                cell = make_cell(server.name, latency, name, threads, requests, runs[name])
                cells.append(cell)
                flag = "" if cell["complete"] else " (INCOMPLETE)"
                line.append(f"{name} {cell['rps']['median']:,.0f}{flag}")
            log(f"{server.name} {latency} ms, {threads_text(threads)}, {requests} requests: "
                + ", ".join(line) + " req/s")
    return cells


def make_cell(server: str, latency: int, client: str, threads: int, requests: int,
              runs: list[Run]) -> dict[str, Any]:
    complete = all(
        run.ok == requests and not run.errors and run.served in (None, requests)
        for run in runs
    )
    return {
        "server": server, "latency_ms": latency, "client": client, "threads": threads,
        "maxsize": threads if client in POOLED else None, "requests": requests,
        "rps": summary([requests / run.seconds for run in runs]),
        "complete": complete, "runs": [run.to_json() for run in runs],
    }


# -- the checkout micro-benchmark ------------------------------------------------------


class FakeConnection:
    """Stands in for a connection: no socket. urllib3 asks ``is_connected`` on checkout."""

    is_connected = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


class FakeUrllib3Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = FakeConnection  # type: ignore[assignment]


CHECKOUT_WHAT = {
    "pool": "Pool.get_conn() + put_conn()",
    "urllib3": "HTTPConnectionPool._get_conn() + _put_conn()",
    "LifoQueue": "queue.LifoQueue get() + put()",
    "call overhead": "an empty function call (included in each row above)",
}


def checkout_ops(size: int) -> dict[str, Callable[[], None]]:
    """One checkout + check-in of each kind, on pools holding ``size`` idle fake connections."""
    ours = Pool(HOST, 80, maxsize=size, block=True, connection_factory=FakeConnection)
    theirs = FakeUrllib3Pool(HOST, 80, maxsize=size, block=True)
    bare: queue.LifoQueue[FakeConnection] = queue.LifoQueue(size)
    held = [ours.get_conn() for _ in range(size)]
    for conn in held:
        ours.put_conn(conn)
    held = [theirs._get_conn() for _ in range(size)]
    for conn in held:
        theirs._put_conn(conn)
    for _ in range(size):
        bare.put(FakeConnection())

    def pool_op() -> None:
        ours.put_conn(ours.get_conn())

    def urllib3_op() -> None:
        theirs._put_conn(theirs._get_conn())

    def queue_op() -> None:
        bare.put(bare.get())

    def nothing() -> None:
        pass

    return {"pool": pool_op, "urllib3": urllib3_op, "LifoQueue": queue_op,
            "call overhead": nothing}


def bench_checkout(config: Config) -> dict[str, Any]:
    """ns per checkout + check-in, one thread, for each pool size (all its connections idle)."""
    number = config.checkout_iterations
    results = []
    for size in config.checkout_sizes:
        ops = checkout_ops(size)
        times: dict[str, list[float]] = {name: [] for name in ops}
        for op in ops.values():  # warm-up
            timeit.Timer(op).timeit(max(1, number // 10))
        for _ in range(config.checkout_repeats):
            for name, op in ops.items():  # interleaved, like the HTTP runs
                times[name].append(timeit.Timer(op).timeit(number) / number * 1e9)
        results.append({"maxsize": size,
                        "ns": {name: summary(values) for name, values in times.items()}})
    return {"iterations": number, "repeats": config.checkout_repeats, "results": results,
            "what": CHECKOUT_WHAT}


# -- the whole run ---------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "urllib3": importlib.metadata.version("urllib3"),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def find_cell(cells: list[dict[str, Any]], server: str, latency: int, client: str,
              threads: int) -> dict[str, Any] | None:
    for cell in cells:
        if (cell["server"], cell["latency_ms"], cell["client"], cell["threads"]) == (
                server, latency, client, threads):
            return cell
    return None


def median_of(cells: list[dict[str, Any]], server: str, latency: int, client: str,
              threads: int) -> float | None:
    cell = find_cell(cells, server, latency, client, threads)
    return None if cell is None else float(cell["rps"]["median"])


def ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seen = sorted({(c["server"], c["latency_ms"], c["threads"]) for c in cells},
                  key=lambda k: (k[0] != "python", k[0], k[1], k[2]))
    for server, latency, threads in seen:
        pool = median_of(cells, server, latency, POOL, threads)
        row: dict[str, Any] = {"server": server, "latency_ms": latency, "threads": threads}
        for other in (URLLIB3, RAW, NEW_CONN):
            base = median_of(cells, server, latency, other, threads)
            row[f"pool/{other}"] = pool / base if pool and base else None
        found.append(row)
    return found


def ceilings(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for server in dict.fromkeys(c["server"] for c in cells):
        fast = [c for c in cells if c["server"] == server and c["latency_ms"] == 0]
        if not fast:
            continue
        best = max(fast, key=lambda c: c["rps"]["median"])
        found.append({
            "server": server, "rps": best["rps"]["median"], "client": best["client"],
            "threads": best["threads"],
            "raw_keepalive": {str(c["threads"]): c["rps"]["median"]
                              for c in fast if c["client"] == RAW},
        })
    return found


def targets(cells: list[dict[str, Any]], checkout: dict[str, Any]) -> list[dict[str, Any]]:
    def target(name: str, value: float | None, threshold: float, at_least: bool,
               shown: Callable[[float], str], *used: dict[str, Any] | None) -> dict[str, Any]:
        met = None if value is None else (value >= threshold if at_least else value <= threshold)
        note = ""
        if value is None:
            note = "not measured in this run"
        elif not all(cell is not None and cell["complete"] for cell in used):
            note = "some runs did not serve every request"
        return {"name": name, "value": value, "threshold": threshold,
                "comparison": ">=" if at_least else "<=", "met": met,
                "shown": "n/a" if value is None else shown(value), "note": note}

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def times(x: float) -> str:
        return f"{x:.2f}x"

    py = "python"
    pool1 = median_of(cells, py, 0, POOL, 1)
    found = [
        target("1 thread, 0 ms: pool within 10% of raw keep-alive (pool/raw >= 0.90)",
               ratio(pool1, median_of(cells, py, 0, RAW, 1)), 0.9, True, times,
               find_cell(cells, py, 0, POOL, 1), find_cell(cells, py, 0, RAW, 1)),
        target("1 thread, 0 ms: pool >= 1.3x urllib3 requests/s",
               ratio(pool1, median_of(cells, py, 0, URLLIB3, 1)), 1.3, True, times,
               find_cell(cells, py, 0, POOL, 1), find_cell(cells, py, 0, URLLIB3, 1)),
    ]
    for size in checkout["results"]:
        ns = size["ns"]
        found.append(target(
            f"checkout + check-in, maxsize {size['maxsize']}: pool <= half of urllib3's time",
            ratio(ns["pool"]["median"], ns["urllib3"]["median"]), 0.5, False, times))
    found.append(target(
        "5 ms, 16 threads, maxsize 16: pool >= 80% of the ideal 3,200 req/s",
        median_of(cells, py, 5, POOL, 16), 2560.0, True,
        lambda x: f"{x:,.0f} req/s ({x / 3200:.0%} of ideal)", find_cell(cells, py, 5, POOL, 16)))
    return found


def run(config: Config, log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """The whole benchmark; returns the JSON-ready result."""
    started = time.monotonic()
    result: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "quick": config.quick, "threads": config.threads,
            "latencies_ms": config.latencies_ms, "repeats": config.repeats,
            "requests_per_run": {str(ms): {str(t): requests_for(config, ms, t)
                                           for t in config.threads}
                                 for ms in config.latencies_ms},
            "requests_fast": config.requests_fast,
            "requests_slow_per_thread": config.requests_slow_per_thread,
            "warmup_fraction": config.warmup_fraction,
        },
        "clients": {name: LABELS[name] for name in CLIENTS},
        "servers": [],
    }
    cells: list[dict[str, Any]] = []
    with python_server() as server:
        cells += bench_server(server, config, log)
        result["servers"].append({"name": server.name, "description": server.description,
                                  "latencies_ms": config.latencies_ms,
                                  "handler_errors": server.errors()})
    nginx = shutil.which("nginx") if config.nginx else None
    if nginx is None:
        why = "not installed (not on PATH)" if config.nginx else "not asked for"
        log(f"nginx: {why}, skipped")
        result["servers"].append({"name": "nginx", "skipped": why})
    else:
        try:
            with nginx_server(nginx) as server:
                log(f"nginx: {nginx}, 0 ms only (5 ms would need a third-party module)")
                cells += bench_server(server, config, log)
            result["servers"].append({"name": "nginx", "description": NginxServer.description,
                                      "binary": nginx, "latencies_ms": [0]})
        except (RuntimeError, OSError) as exc:
            log(f"nginx: could not run it, skipped: {exc}")
            result["servers"].append({"name": "nginx", "skipped": str(exc)})
    log("checkout + check-in micro-benchmark ...")
    checkout = bench_checkout(config)
    result["http"] = cells
    result["checkout"] = checkout
    result["ratios"] = ratios(cells)
    result["ceiling"] = ceilings(cells)
    result["targets"] = targets(cells, checkout)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


# -- reporting -------------------------------------------------------------------------


def machine_line(m: dict[str, Any]) -> str:
    usable = f" ({m['usable_cores']} usable)" if m.get("usable_cores") not in (None,
                                                                              m["cores"]) else ""
    return (f"{m['cpu']}, {m['cores']} cores{usable}, {m['system']}, "
            f"{m['implementation']} {m['python']}, urllib3 {m['urllib3']}")


def _rps(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    r = cell["rps"]
    flag = "" if cell["complete"] else " (!)"
    return f"{r['median']:,.0f} ({r['min']:,.0f}{DASH}{r['max']:,.0f}){flag}"


def markdown(result: dict[str, Any], plot_path: str | None = None) -> str:
    cells: list[dict[str, Any]] = result["http"]
    config = result["config"]
    threads: list[int] = config["threads"]
    lines = ["### HTTP throughput (`python bench/http_bench.py`)", ""]
    lines.append(f"Machine: {machine_line(result['machine'])}. Loopback only; the server runs "
                 "in its own process, on the same cores as the clients.")
    for server in result["servers"]:
        if "skipped" in server:
            lines.append(f"Server `{server['name']}`: skipped, {server['skipped']}.")
        else:
            lines.append(f"Server `{server['name']}`: {server['description']}, latencies "
                         + ", ".join(f"{ms} ms" for ms in server["latencies_ms"]) + ".")
    lines += [
        "",
        f"Requests/s, median of {config['repeats']} runs (min{DASH}max). In each run every "
        f"client sends the same number of requests and reads every response: at 0 ms "
        f"{config['requests_fast']:,} in all, at other latencies "
        f"{config['requests_slow_per_thread']:,} per thread; clients take turns run by run, "
        "after an untimed warm-up. maxsize = threads. (!) marks a cell where some request "
        "was not served.",
        "",
        "| server, latency | client | " + " | ".join(
            threads_text(t) for t in threads) + " |",
        "|---|---|" + "---:|" * len(threads),
    ]
    groups = dict.fromkeys((c["server"], c["latency_ms"]) for c in cells)
    for server, latency in groups:
        for client in CLIENTS:
            row = [_rps(find_cell(cells, server, latency, client, t)) for t in threads]
            lines.append(f"| {server}, {latency} ms | {result['clients'][client]} | "
                         + " | ".join(row) + " |")
    lines += ["", "Ratios of the medians above (same run):", "",
              "| server, latency | ratio | " + " | ".join(str(t) for t in threads) + " |",
              "|---|---|" + "---:|" * len(threads)]
    for server, latency in groups:
        for other in (URLLIB3, RAW, NEW_CONN):
            row = []
            for t in threads:
                found = [r for r in result["ratios"] if (r["server"], r["latency_ms"],
                                                         r["threads"]) == (server, latency, t)]
                value = found[0][f"pool/{other}"] if found else None
                row.append("" if value is None else f"{value:.2f}x")
            lines.append(f"| {server}, {latency} ms | pool / {other} | " + " | ".join(row) + " |")
    checkout = result["checkout"]
    sizes_shown = [size["maxsize"] for size in checkout["results"]]
    lines += [
        "",
        "Checkout + check-in, no network: fake connections, one thread, block=True, every "
        "connection of the pool idle; ns, median of "
        f"{checkout['repeats']} x {checkout['iterations']:,} (min{DASH}max), and against "
        "urllib3. The fake connections make urllib3's dropped-connection check free; on a "
        "real socket it costs a poll() per checkout.",
        "",
        "| what | " + " | ".join(f"maxsize {n} | vs urllib3" for n in sizes_shown) + " |",
        "|---|" + "---:|---:|" * len(sizes_shown),
    ]
    for name, what in checkout["what"].items():
        row = []
        for size in checkout["results"]:
            s, base = size["ns"][name], size["ns"]["urllib3"]["median"]
            row += [f"{s['median']:,.0f} ({s['min']:,.0f}{DASH}{s['max']:,.0f})",
                    f"{s['median'] / base:.2f}x"]
        lines.append(f"| {what} | " + " | ".join(row) + " |")
    lines.append("")
    for ceiling in result["ceiling"]:
        raw = ", ".join(f"{threads_text(t)} {v:,.0f}"
                        for t, v in ceiling["raw_keepalive"].items())
        lines.append(f"Ceiling of the `{ceiling['server']}` server at 0 ms, on this machine: "
                     f"{ceiling['rps']:,.0f} req/s, the most any client reached "
                     f"({ceiling['client']}, {threads_text(ceiling['threads'])}); raw keep-alive, "
                     f"one connection per thread: {raw} req/s.")
    lines += ["", "Targets (reported, not asserted):", ""]
    for t in result["targets"]:
        mark = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        note = f"; {t['note']}" if t["note"] and t["met"] is not None else ""
        lines.append(f"- {t['name']}: {t['shown']}, **{mark}**{note}")
    if plot_path:
        lines += ["", f"![Requests/s against threads, one line per client]({plot_path})"]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: str) -> bool:
    """Throughput against threads, one line per client, one panel per server and latency."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print(MATPLOTLIB_MISSING, file=sys.stderr)
        return False
    cells: list[dict[str, Any]] = result["http"]
    threads: list[int] = result["config"]["threads"]
    panels = list(dict.fromkeys((c["server"], c["latency_ms"]) for c in cells))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.3), squeeze=False)
    for ax, (server, latency) in zip(axes[0], panels, strict=True):
        for client in CLIENTS:
            found = [(t, cell) for t in threads
                     if (cell := find_cell(cells, server, latency, client, t)) is not None]
            xs = [t for t, _ in found]
            mid = [cell["rps"]["median"] for _, cell in found]
            low = [m - cell["rps"]["min"] for m, (_, cell) in zip(mid, found, strict=True)]
            high = [cell["rps"]["max"] - m for m, (_, cell) in zip(mid, found, strict=True)]
            ax.errorbar(xs, mid, yerr=[low, high], marker="o", capsize=3, label=LABELS[client])
        if latency > 0:
            ax.plot(threads, [1000 / latency * t for t in threads], "k--", linewidth=1,
                    label=f"ideal ({1000 // latency} req/s per thread)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads)
        ax.set_xticklabels([str(t) for t in threads])
        ax.set_title(f"{server} server, {latency} ms latency")
        ax.set_xlabel("threads (maxsize = threads)")
        ax.set_ylabel(f"requests/s (median, min{DASH}max)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(machine_line(result["machine"]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


MATPLOTLIB_MISSING = ("--plot needs matplotlib, which is not installed "
                      "(pip install matplotlib, or the project's `bench` extra): no plot")


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 and 4 threads, tiny counts, 3 repeats")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="draw requests/s against threads (PNG)")
    args = parser.parse_args(argv)
    plot_path: str | None = args.plot
    if plot_path and importlib.util.find_spec("matplotlib") is None:
        print(MATPLOTLIB_MISSING, file=sys.stderr)
        plot_path = None

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    config = QUICK if args.quick else Config()
    log(f"machine: {machine_line(machine())}")
    result = run(config, log)
    if args.json:
        write_json(result, args.json)
        log(f"wrote {args.json}")
    if plot_path and plot(result, plot_path):
        log(f"wrote {plot_path}")
    log(f"{result['seconds']} s in all")
    print(markdown(result, plot_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
