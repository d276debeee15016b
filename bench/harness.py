"""What every benchmark shares: Django on a scratch database, clean tables, real processes, statistics.

The scratch database is ``BENCH_DATABASE_URL`` (created and migrated on first
use), the broker ``BENCH_BROKER_URL`` and the cache ``BENCH_CACHE_URL``; the
processes are the project's own (``celery -A config worker``, ``manage.py
outbox_relay``) with the test settings, as in ``tests/support/processes.py``.
Nothing here knows the outbox's internals: benchmarks publish through
``outbox.publishing.publish`` and count the probe's committed ``Effect`` rows.
"""

import contextlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from tests.support.processes import ChildProcess

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/oms_bench")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/14")
WORKER_PROCESSES = 2  # one worker, prefork pool of two: the "two worker processes"
QUEUES = ("outbox", "probe")  # the relay's tasks and the probe's deliveries and baseline tasks
PARKED_QUEUE = "bench-parked"  # what a worker consumes while "no consumer runs": nothing is ever sent there
DONE_LIST = "bench:done"  # tests/outbox/probe/effects.py pushes "<event id> <time>" here after each commit

_migrated: set[str] = set()
BENCH_CUSTOMER = "bench-customer"  # the customer every benchmark orders as (see seed_shop)


def setup() -> None:
    """Django with the test settings on the scratch database; the database created and migrated."""
    metrics = tempfile.mkdtemp(prefix="oms-bench-metrics-")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        TEST_DATABASE_URL=DATABASE_URL,
        TEST_BROKER_URL=BROKER_URL,
        TEST_CACHE_URL=CACHE_URL,
        TEST_SIDE_CHANNEL_URL=BROKER_URL,
        PROMETHEUS_MULTIPROC_DIR=metrics,
        LOG_LEVEL="WARNING",
    )
    import atexit

    atexit.register(shutil.rmtree, metrics, ignore_errors=True)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    ensure_database()


def setup_once() -> None:
    """:func:`setup`, unless Django is set up already (by the runner): for a bench module run on its own."""
    from django.apps import apps

    if not apps.ready:
        setup()


def ensure_database(name: str = "") -> None:
    """Create the database (the current one by default) if missing, and migrate it once per process."""
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    name = name or connection.settings_dict["NAME"]
    if name in _migrated:
        return
    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    with use_database(name):
        call_command("migrate", verbosity=0)
    _migrated.add(name)


@contextlib.contextmanager
def use_database(name: str) -> Iterator[None]:
    """Point this process (and the processes started meanwhile) at another database of the same server."""
    from django.db import connection

    before = connection.settings_dict["NAME"]
    if name == before:
        yield
        return
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = before


# Clean state -------------------------------------------------------------------------------------


def bench_tables() -> list[str]:
    """The outbox's tables and the probe's, whatever they are today."""
    from django.db import connection

    return [t for t in connection.introspection.table_names() if t.startswith(("outbox_", "probe_"))]


def reset() -> None:
    """Empty tables, empty queues, empty cache: every measurement starts from nothing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(bench_tables())} RESTART IDENTITY CASCADE")
    purge_redis()


def purge_redis() -> None:
    """Drop queued messages and the done list, keeping kombu's bindings (a flushed binding loses later sends)."""
    broker = redis_client(BROKER_URL)
    stale = [key for key in broker.scan_iter(count=1000) if not key.startswith(b"_kombu.binding.")]
    if stale:
        broker.delete(*stale)
    redis_client(CACHE_URL).flushdb()


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url)


def effects() -> int:
    """Committed probe effects: handler runs done, whichever side ran them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM probe_effect")
        return cursor.fetchone()[0]


def effect_span() -> tuple[int, float]:
    """How many effects, and the seconds from the first one's insert to the last one's."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), EXTRACT(EPOCH FROM max(created_at) - min(created_at)) FROM probe_effect")
        count, span = cursor.fetchone()
    return count, float(span or 0.0)


def done_times() -> dict[str, float]:
    """Event id -> when its handler's transaction committed, as the probe noted it (see ``DONE_LIST``)."""
    entries = redis_client(BROKER_URL).lrange(DONE_LIST, 0, -1)
    return {event_id: float(at) for event_id, at in (entry.decode().split() for entry in entries)}


def done_count() -> int:
    return redis_client(BROKER_URL).llen(DONE_LIST)


# Processes -----------------------------------------------------------------------------------------


class Consumers:
    """A worker (and a relay when asked), stopped however the block ends.

    ``Consumers(parked=True)`` starts the worker consuming a queue nobody sends
    to: its processes are up and warm, but no consumer runs until
    :meth:`consume`; :meth:`park` stops consuming again. Workers log at
    WARNING: Celery's two INFO lines per task would cost the plain-Celery
    baseline more than the outbox's batches. ``note_done`` has the probe note
    each commit in Redis (``DONE_LIST``), for latencies; it costs a round trip
    per effect, so throughput counts committed rows instead.
    """

    def __init__(self, *, relay: bool = False, parked: bool = False, note_done: bool = False, **env: str) -> None:
        self.env = {"PROBE_DONE_LIST": DONE_LIST, **env} if note_done else env
        self.want_relay, self.parked = relay, parked
        self.worker: ChildProcess | None = None
        self.relay: ChildProcess | None = None
        self.ready = False
        self.node = f"bench-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"

    def __enter__(self) -> "Consumers":
        try:
            self.worker = self._launch_worker()
            if self.want_relay:
                self.relay = self._launch_relay()
            if not self.parked:  # a parked worker boots while the caller writes its backlog: see consume()
                self._wait_worker()
            if self.relay is not None:
                self._wait_relay()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for child in (self.relay, self.worker):
            if child is not None:
                child.stop()

    def _launch_worker(self):
        from tests.support.processes import ChildProcess, process_env

        queues = PARKED_QUEUE if self.parked else ",".join(QUEUES)
        argv = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-c", str(WORKER_PROCESSES),
            "-P", "prefork", "-n", self.node, "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        return ChildProcess("bench-worker", argv, process_env(**self.env))

    def _wait_worker(self) -> None:
        """Ready when it answers a ping: its consumer loop runs (it logs nothing at WARNING)."""
        from config.celery_app import app

        worker = self._started_worker()

        def answers() -> bool:
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.output()[-3000:]}")
            return bool(app.control.ping(destination=[self.node], timeout=0.3))

        if not self.ready:
            wait_until(answers, timeout=90, what="the worker to start")
            self.ready = True

    def _launch_relay(self):
        """``manage.py outbox_relay`` as production runs it: no options, the shipped defaults."""
        from tests.support.processes import ChildProcess, process_env

        argv = [sys.executable, "manage.py", "outbox_relay"]
        return ChildProcess("bench-relay", argv, process_env(**self.env), ready_when="outbox relay:")

    def _wait_relay(self) -> None:
        if self.relay is None:
            raise RuntimeError("no relay was started to wait for")
        wait_until(self.relay.ready, timeout=60, what="the relay to start")

    def _started_worker(self) -> "ChildProcess":
        if self.worker is None:
            raise RuntimeError("the worker is not started: use the consumers in a with block")
        return self.worker

    def start_relay(self) -> None:
        """Start the relay process now (``relay=False`` consumers that get one later, as a drain does)."""
        self.relay = self._launch_relay()
        self._wait_relay()

    def stop_relay(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def consume(self, queues: tuple[str, ...] = QUEUES) -> None:
        from config.celery_app import app

        self._wait_worker()
        for queue in queues:
            replies = app.control.add_consumer(queue, destination=[self.node], reply=True, timeout=5)
            if not replies:
                raise RuntimeError(f"the worker did not start consuming {queue}")

    def park(self, queues: tuple[str, ...] = QUEUES) -> None:
        from config.celery_app import app

        for queue in queues:
            if not app.control.cancel_consumer(queue, destination=[self.node], reply=True, timeout=5):
                raise RuntimeError(f"the worker did not stop consuming {queue}")

    def rss(self) -> dict[str, float]:
        """Resident memory in MiB of each process group (the worker's main process and its pool children)."""
        sizes = {"worker": group_rss_mib(self._started_worker().pid)}
        if self.relay is not None:
            sizes["relay"] = group_rss_mib(self.relay.pid)
        return sizes


def group_rss_mib(pgid: int) -> float:
    """The summed VmRSS of a process group's live members, from /proc."""
    from tests.support.processes import group_members

    total_kib = 0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*, pgids: Sequence[int] = (), command: str = "") -> float:
    """CPU time (user + system) so far of the live members of these process groups, or of every
    process whose command line starts with ``command`` (``postgres``: the server and its backends)."""
    total, prefix = 0, command.encode()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state ppid pgrp ... utime(12) stime(13)
            if int(fields[2]) in pgids if pgids else (stat.parent / "cmdline").read_bytes().startswith(prefix):
                total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


# Producers -----------------------------------------------------------------------------------------


def in_threads(work: Callable[[int], object], threads: int = 2) -> None:
    """Run ``work(index)`` in ``threads`` threads (each with its own connection, closed after); re-raise a failure."""
    from django.db import connection

    failures: list[BaseException] = []

    def body(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    if failures:
        raise failures[0]


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# Waiting and statistics ---------------------------------------------------------------------------


_T = TypeVar("_T")


def wait_until(condition: Callable[[], _T | None], *, timeout: float, what: str, interval: float = 0.05) -> _T:
    """Poll ``condition`` until it is truthy; fail the benchmark after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_figures(millis: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(millis, 0.50),
        "p90_ms": percentile(millis, 0.90),
        "p99_ms": percentile(millis, 0.99),
        "max_ms": max(millis),
    }


def ratios(figures: dict[str, float], baseline: dict[str, float]) -> dict[str, float]:
    """Each figure over the baseline's figure of the same name."""
    return {key: figures[key] / baseline[key] for key in figures if baseline.get(key)}


def seed_shop(*, password: str) -> None:
    """seed_demo's catalogue, and ``BENCH_CUSTOMER`` (a plain customer) with ``password``. Idempotent.

    Not seed_demo itself: that creates a superuser with a known password and refuses to run without DEBUG,
    while the benchmarks run the test and production settings.
    """
    from django.contrib.auth import get_user_model

    from inventory.demo import seed_catalogue

    seed_catalogue()
    customer, _ = get_user_model().objects.get_or_create(username=BENCH_CUSTOMER)
    customer.set_password(password)
    customer.save()
