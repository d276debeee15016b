"""`make run-prod` ships an order placed over HTTP, on the production settings, and leaves no process behind.

The test runs the very script the make target runs (scripts/run_prod.sh: Procfile.prod's gunicorn, four
Celery workers by queue, beat and the LISTENing relay, with honcho), but on a PostgreSQL database of its own
(named after the test database, created by the script and dropped after), a throwaway ``redis-server`` and a
free port: nothing is shared with the suite's database, broker or another run. A process that fails to start
stops honcho and the script (the test fails with its log); one that runs but does not do its part leaves the
order unshipped (the test fails at its deadline, with the log).
"""

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from psycopg import sql

from inventory.demo import CATALOGUE
from tests.factories import ADDRESS
from tests.support.processes import ROOT, ChildProcess, wait_for
from tests.support.rest import ShopClient
from tests.support.web import RedisServer, free_port, http_get

# Its own deadlines (start, ship, stop) end it first; this one only keeps pytest-timeout from cutting its cleanup.
pytestmark = [pytest.mark.workers, pytest.mark.timeout(480)]

PROCFILE_KINDS = re.findall(r"^([A-Za-z0-9_-]+):", (ROOT / "Procfile.prod").read_text(), re.MULTILINE)
USERNAME, PASSWORD = "smoke-customer", "smoke-test-pass-7Hq2"  # a customer made by manage.py in that database
START_SECONDS = 240  # migrations on an empty database and seven processes on a busy 2-core machine (28 s here)
SHIP_SECONDS = 90  # 0.5 s here


def _server() -> dict:
    db = settings.DATABASES["default"]
    return {"user": db["USER"] or "postgres", "host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432}


def _drop(name: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def prod_database():
    """The name of a database for the run (the script creates it); dropped before and after."""
    name = f"{settings.DATABASES['default']['TEST']['NAME']}_run_prod"
    _drop(name)
    yield name
    _drop(name)


def _connections(name: str) -> int:
    with psycopg.connect(dbname="postgres", autocommit=True, **_server()) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        return conn.execute(query, [name]).fetchone()[0]


def _proc_table() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, start time in clock ticks: with the pid, names one process)."""
    table = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = path.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                table[int(path.parent.name)] = (int(fields[1]), fields[19])
    return table


def _descendants(root: int) -> set[tuple[int, str]]:
    """The processes under ``root`` (honcho starts each of its own in a session of its own, so not its group)."""
    table = _proc_table()
    found, frontier = set(), [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, started) in table.items():
            if ppid == parent and (pid, started) not in found:
                found.add((pid, started))
                frontier.append(pid)
    return found


def _still_running(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    table = _proc_table()
    return {(pid, started) for pid, started in processes if table.get(pid, (0, ""))[1] == started}


def _run_prod_env(tmp_path: Path, port: int, database: str, redis: RedisServer) -> dict[str, str]:
    """The script's environment: this session's, less what points a process at the test settings, and ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEST_", "DJANGO_", "PROMETHEUS_", "CELERY_", "OUTBOX_", "CONN_MAX_AGE"))
    }
    server = _server()
    env.update(
        BIN=str(Path(sys.executable).parent),
        PORT=str(port),
        DATABASE_URL=f"postgres://{server['user']}@{server['host']}:{server['port']}/{database}",
        CELERY_BROKER_URL=redis.url,
        CACHE_URL=redis.cache_url,
        VAR_DIR=str(tmp_path / "var"),
        RUN_PROD_ENV_FILE=str(tmp_path / "prod-local.env"),
        RUN_PROD_START_SECONDS=str(START_SECONDS - 30),
    )
    return env


def test_run_prod_ships_an_order_placed_over_http_and_stops_every_process(tmp_path, prod_database):
    redis = RedisServer().start()
    port = free_port()
    env = _run_prod_env(tmp_path, port, prod_database, redis)
    started_at = time.monotonic()
    run = ChildProcess("run-prod", ["bash", "scripts/run_prod.sh"], env, ready_when="run-prod: up")
    ours: set[tuple[int, str]] = set()
    try:
        # given make run-prod's script, up: the web answers /healthz and every worker a ping (it says so)
        wait_for(run.ready, timeout=START_SECONDS, interval=0.5, what=lambda: f"run-prod to be up:\n{_tail(run)}")
        up_after = time.monotonic() - started_at
        ours = _descendants(run.pid)
        log = run.output()
        for kind in PROCFILE_KINDS:
            assert f"{kind}.1 started" in log, f"honcho did not start {kind}:\n{_tail(run)}"
        assert "outbox relay: LISTEN outbox_event" in log, _tail(run)  # the relay's low-latency path, on PostgreSQL
        # with a secret generated into a file only its owner reads
        secrets = dict(line.split("=", 1) for line in Path(env["RUN_PROD_ENV_FILE"]).read_text().splitlines())
        assert len(secrets["SECRET_KEY"]) >= 50
        assert stat.S_IMODE(Path(env["RUN_PROD_ENV_FILE"]).stat().st_mode) == 0o600
        # and the production settings in force: /metrics wants the generated token
        url = f"http://127.0.0.1:{port}"
        assert http_get(f"{url}/metrics").status == 401
        metrics = http_get(f"{url}/metrics", headers={"Authorization": f"Bearer {secrets['METRICS_TOKEN']}"})
        assert metrics.status == 200, metrics.body[:500]
        # and a customer made by a manage.py command run in the same environment, against that database
        make_customer = (
            "from django.contrib.auth import get_user_model; import os; "
            "get_user_model().objects.create_user(os.environ['SMOKE_USERNAME'], password=os.environ['SMOKE_PASSWORD'])"
        )
        made = subprocess.run(
            ["bash", "scripts/run_prod.sh", "manage", "shell", "--verbosity", "0", "-c", make_customer],
            cwd=ROOT,
            env={**env, "SMOKE_USERNAME": USERNAME, "SMOKE_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        idle_connections = _connections(prod_database)

        # when they sign in over REST, place an order of a demo product paid with a good card, and confirm it
        customer = ShopClient(url).sign_in(USERNAME, PASSWORD)
        sku = CATALOGUE[0][0]
        placed = customer.place_order([(sku, 2)], ADDRESS, "tok_visa")
        assert placed.status == 201, placed.data
        order_id = placed.data["id"]
        confirmed = customer.confirm(order_id)
        assert confirmed.status == 202, confirmed.data
        confirmed_at = time.monotonic()

        # then it ships: payment, stock, the saga and the carrier, each on its worker
        def shipped() -> bool:
            status = customer.get_order(order_id).data["status"]
            assert status != "cancelled", f"the order was cancelled:\n{_tail(run)}"
            return status == "shipped"

        wait_for(shipped, timeout=SHIP_SECONDS, interval=0.2, what=lambda: f"order {order_id} to ship:\n{_tail(run)}")
        shipped_after = time.monotonic() - confirmed_at
        order = customer.get_order(order_id).data
        assert order["shipment"] is not None, order
        assert order["shipment"]["tracking_number"], order
        # and /healthz says every part is fine
        health = http_get(f"{url}/healthz")
        assert health.status == 200, health.body
        assert health.json()["status"] == "ok", health.body
        busy_connections = _connections(prod_database)
        assert run.alive(), _tail(run)

        # when it is stopped as Ctrl-C stops it (the script forwards the signal to honcho)
        run.send(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(60)
        assert not run.alive(), f"run-prod did not stop within 60 s:\n{_tail(run)}"
        # then every process it started is gone
        wait_for(lambda: not _still_running(ours), timeout=15, what=lambda: f"left: {_still_running(ours)}")
        for kind in PROCFILE_KINDS:
            assert f"{kind}.1 stopped" in run.output(), _tail(run)
        print(
            f"\nrun-prod: up in {up_after:.1f} s, order shipped {shipped_after:.2f} s after its confirm; "
            f"{len(ours)} processes; database connections {idle_connections} idle, {busy_connections} after the order"
        )
    finally:
        ours |= _descendants(run.pid)
        run.stop()  # the script and honcho (its group): honcho stops its processes
        for pid, _ in _still_running(ours):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        redis.remove()


def _tail(run: ChildProcess, chars: int = 6000) -> str:
    """The end of the script's output, less beat's and the workers' per-task lines."""
    noise = re.compile(r"Task outbox\.relay\[|Task notifications\.send_due\[|Scheduler: Sending")
    lines = [line for line in run.output().splitlines() if not noise.search(line)]
    return "\n".join(lines)[-chars:]
