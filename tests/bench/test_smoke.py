"""The benchmark suite cannot rot: every bench of the registry runs with tiny counts and prints its line.

Each runs as ``python -m bench <name> --smoke`` in a subprocess, on a scratch
database of its own (``TEST_DATABASE_URL``'s name + ``_bench_smoke``) and the
session's Redis databases, with the session's relay and worker stopped so
that nothing else consumes its queues. No targets are judged: the figures of
a smoke run mean nothing, only that every part of the bench still works.
"""

import json
import math
import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings

from bench.__main__ import BENCHES
from tests.support.processes import ROOT

pytestmark = pytest.mark.bench

# Benches measured against a baseline in the same run (the plain-Celery floor, or empty tables for scale).
WITH_BASELINE = {"latency", "drain", "throughput", "scale"}


def bench_env() -> dict[str, str]:
    """The session's Redis databases, and a scratch database named after the session's (``TEST_DATABASE_URL``)."""
    server, name = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/oms").rsplit("/", 1)
    return {
        **os.environ,
        "BENCH_DATABASE_URL": f"{server}/{name.split('?')[0]}_bench_smoke",
        "BENCH_BROKER_URL": settings.CELERY_BROKER_URL,
        "BENCH_CACHE_URL": settings.CACHES["default"]["LOCATION"],
    }


def run_smoke(name: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m bench <name> --smoke``; on a timeout it gets SIGTERM first, so it stops what it started."""
    argv = [sys.executable, "-m", "bench", name, "--smoke"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        pytest.fail(f"bench {name} --smoke ran past {timeout}s:\n{err[-4000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def numeric(values: dict) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values.values())


@pytest.mark.parametrize("name", BENCHES)
def test_bench_runs_and_prints_one_line(name, no_live_outbox):
    result = run_smoke(name)

    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    line = json.loads(lines[0])
    assert line["bench"] == name
    assert line["runs"] == 1
    assert line["smoke"] is True
    assert "met" not in line  # no targets judged on tiny counts
    assert line["figures"], line
    assert numeric(line["figures"]), line["figures"]
    assert numeric(line["baseline"]), line["baseline"]
    assert numeric(line["ratio"]), line["ratio"]
    assert isinstance(line["targets"], dict)
    if name in WITH_BASELINE or line["baseline"]:
        assert line["baseline"], line
        assert line["ratio"], line
        for key, ratio in line["ratio"].items():
            assert ratio > 0, (key, line)
