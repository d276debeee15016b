"""Kicks on the embedded default: every commit wakes the relay, whatever the cache, with no sweep to rescue one.

Two processes, as `make run` has them minus beat: a worker on every queue
(which runs the relay task), and a process that publishes. The chain's hops
each need a relay pass, so a swallowed kick would stall it for good.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import ALL_QUEUES, ROOT, ChildProcess, wait_for

pytestmark = pytest.mark.workers

HOPS = 6
SECONDS_FOR_ALL_HOPS = 1.0  # beat sweeps every second: a chain that waited on it would take several

# Each hop is published once the one before it was handled, from this process (a web
# process's commits); then six more hops of one thing in one commit, each released by the
# worker's kick when the one before it is done (an ordered handler).
CHAIN = """
import json, time, uuid
from django.db import transaction
from outbox.publishing import publish
from tests.outbox.probe.events import Hopped
from tests.outbox.probe.models import Effect

def recorded(thing, count, deadline):
    while Effect.objects.filter(handler="hop", aggregate_id=str(thing)).count() < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True

def chain_of_commits(hops):
    thing, start = uuid.uuid4(), time.monotonic()
    for seq in range(hops):
        with transaction.atomic():
            publish(Hopped(thing_id=thing, seq=seq))
        if not recorded(thing, seq + 1, start + 20):
            return None, seq
    return time.monotonic() - start, hops

def chain_in_one_commit(hops):
    thing, start = uuid.uuid4(), time.monotonic()
    with transaction.atomic():
        for seq in range(hops):
            publish(Hopped(thing_id=thing, seq=seq))
    done = recorded(thing, hops, start + 20)
    return (time.monotonic() - start if done else None), Effect.objects.filter(aggregate_id=str(thing)).count()

chain_of_commits(1)  # the worker's first tasks pay for its connections and imports
print(json.dumps({"commits": chain_of_commits(%(hops)d), "one_commit": chain_in_one_commit(%(hops)d)}))
"""


def embedded_env(var_dir, **overrides: str) -> dict[str, str]:
    """The local settings with nothing configured but a folder of their own (and the probe app)."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "CACHE_URL", "TEST_", "PROMETHEUS_"))
    }
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "tests.support.local_probe_settings",
        "VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }


def _manage(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_chain_of_six_hops_finishes_well_within_a_sweep_on_local_settings(tmp_path):
    # given the local settings with a per-process cache (the old default, and any deployment that
    # forgets CACHE_URL), a worker on every queue, and no beat
    env = embedded_env(tmp_path, CACHE_URL="locmemcache://")
    _manage(env, "migrate", "--noinput")
    worker = ChildProcess(
        "embedded-worker",
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ALL_QUEUES, "-c", "2",
         "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
        env,
    )  # fmt: skip
    try:
        wait_for(lambda: " ready." in worker.output(), timeout=60, what=worker.output)
        # when another process publishes six hops one after another, then six in one commit
        timings = json.loads(_manage(env, "shell", "-c", CHAIN % {"hops": HOPS}).strip().splitlines()[-1])
        # then every hop was relayed at once: both chains finished well within one sweep interval
        for chain in ("commits", "one_commit"):
            seconds, hops_done = timings[chain]
            assert hops_done == HOPS, (chain, timings, worker.output()[-3000:])
            assert seconds < SECONDS_FOR_ALL_HOPS, (chain, timings)
    finally:
        worker.stop()
