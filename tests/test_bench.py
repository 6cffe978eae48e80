"""A smoke test of ``bench/http_bench.py``: tiny counts on the local server.

It checks the shape of the JSON and that every client served every request (counted by
the client and by the server); it asserts nothing about speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import http_bench

pytestmark = pytest.mark.timeout(60)

THREADS = [1, 2]
LATENCIES = [0, 5]


def test_http_bench_smoke(tmp_path: Path) -> None:
    config = http_bench.Config(
        threads=THREADS, latencies_ms=LATENCIES, requests_fast=12, requests_slow_per_thread=2,
        repeats=2, checkout_iterations=200, checkout_repeats=2, checkout_sizes=[1, 3],
        nginx=False,
    )
    path = tmp_path / "bench.json"
    http_bench.write_json(http_bench.run(config), path)
    result = json.loads(path.read_text())

    assert {"machine", "config", "clients", "servers", "http", "checkout", "ratios", "ceiling",
            "targets", "seconds"} <= set(result)
    assert {"cpu", "cores", "python"} <= set(result["machine"])
    assert [s["name"] for s in result["servers"]] == ["python", "nginx"]
    assert "skipped" in result["servers"][1]
    assert result["servers"][0]["handler_errors"] == 0

    cells = result["http"]
    assert sorted((c["client"], c["latency_ms"], c["threads"]) for c in cells) == sorted(
        (client, ms, t) for client in http_bench.CLIENTS for ms in LATENCIES for t in THREADS)
    for cell in cells:
        where = (cell["client"], cell["latency_ms"], cell["threads"])
        requests = cell["requests"]
        assert requests == (12 if cell["latency_ms"] == 0 else 2 * cell["threads"]), where
        assert cell["complete"], where
        assert len(cell["runs"]) == 2
        for run in cell["runs"]:
            assert run["errors"] == [], where
            assert run["ok"] == run["served"] == requests, where
            if cell["client"] == http_bench.NEW_CONN:
                assert run["connections"] == requests, where
            elif cell["client"] == http_bench.RAW:
                assert run["connections"] == cell["threads"], where
            else:  # a pool with maxsize = threads, block=True
                assert cell["maxsize"] == cell["threads"]
                assert 1 <= run["connections"] <= cell["threads"], where
        rps = cell["rps"]
        assert rps["min"] <= rps["median"] <= rps["max"]
        assert len(rps["runs"]) == 2

    assert len(result["ratios"]) == len(LATENCIES) * len(THREADS)
    assert all(r["pool/urllib3"] > 0 for r in result["ratios"])
    assert [c["server"] for c in result["ceiling"]] == ["python"]
    assert [r["maxsize"] for r in result["checkout"]["results"]] == [1, 3]
    for size in result["checkout"]["results"]:
        assert set(size["ns"]) == set(http_bench.CHECKOUT_WHAT)
    assert len(result["targets"]) == 5
    for target in result["targets"]:
        assert target["met"] in (True, False, None)
    assert result["targets"][-1]["met"] is None  # no 16 threads here

    table = http_bench.markdown(result, "bench/http_bench.png")
    assert "| python, 5 ms | pool.Pool, shared |" in table
    assert "![" in table
