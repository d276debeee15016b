"""Shared fixtures. The suite runs on a real PostgreSQL and a real Redis, or not at all."""

import os
import time

import coverage
import psycopg
import pytest
import redis as redis_lib
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.signals import request_finished, request_started
from django.db import OperationalError, close_old_connections
from django.test import Client, TransactionTestCase

from tests.support.processes import ChildProcess, start_relay, start_worker
from tests.support.users import make_user

HOW_TO_START = """
The test suite needs PostgreSQL and Redis (see README, "Running the tests"):
  PostgreSQL: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
  Redis:      redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
or point TEST_DATABASE_URL / TEST_BROKER_URL at running servers.
"""


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the run, loudly, when a required service is down: never skip the suite."""
    db = settings.DATABASES["default"]
    problems = []
    try:
        psycopg.connect(
            dbname="postgres",
            user=db["USER"] or None,
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {db['HOST']}:{db['PORT']} is not reachable: {exc}")
    try:
        redis_lib.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=3).ping()
    except redis_lib.RedisError as exc:
        problems.append(f"Redis at {settings.CELERY_BROKER_URL} is not reachable: {exc}")
    if problems:
        pytest.exit("\n".join(problems) + "\n" + HOW_TO_START, returncode=3)


# coverage.py's patch = ["subprocess"] (pyproject.toml) hands its configuration to every process a test
# starts through this variable; without it a process runs untraced.
COVERAGE_IN_SUBPROCESSES = "COVERAGE_PROCESS_CONFIG"
_untraced = pytest.StashKey[str]()
_paused = pytest.StashKey[coverage.Coverage]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A fault test runs untraced by coverage: its own process, and the workers, relays and servers it starts.

    Those tests hold real processes to leases of a few seconds while they kill and stop things, on two
    cores. Traced, every handler ran several times slower (the chaos test's drain went from about 30 s to
    170 s, its leases running out on handlers merely slow), and the tracing test process took the CPU the
    workers needed: the tests then measure the tracer, not the outbox. Before the test's fixtures start
    anything (module-scoped ones included), the measurement pauses and the variable is taken away; both
    come back after the teardown.
    """
    if not item.get_closest_marker("faults"):
        return
    if COVERAGE_IN_SUBPROCESSES in os.environ:
        item.stash[_untraced] = os.environ.pop(COVERAGE_IN_SUBPROCESSES)
    measuring = coverage.Coverage.current()
    if measuring is not None:
        measuring.stop()
        item.stash[_paused] = measuring


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    try:
        return (yield)
    finally:
        if _untraced in item.stash:
            os.environ[COVERAGE_IN_SUBPROCESSES] = item.stash[_untraced]
        if _paused in item.stash:
            item.stash[_paused].start()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The test database, with empty tables even when ``--reuse-db`` found a killed run's rows in it.

    A run stopped mid-way (a timeout, a killed session) never reaches the
    flush of its last transactional test; the next run would otherwise start
    on its orders, events and deliveries.
    """
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)
    return django_db_setup


@pytest.fixture(autouse=True, scope="session")
def _flush_retries_a_deadlock():
    """Let a transactional test's flush retry when it deadlocks with the live processes.

    The session's relay and worker keep polling while pytest-django TRUNCATEs
    every table after a ``transaction=True`` test; PostgreSQL may then abort
    the TRUNCATE as a deadlock victim (the relay's claim locks outbox_event
    before outbox_delivery, TRUNCATE the other way round). Trying again is
    correct: the flush is idempotent, and the other side has moved on.
    """
    original = TransactionTestCase._fixture_teardown

    def teardown(self) -> None:
        for attempt in range(1, 6):
            try:
                return original(self)
            except (OperationalError, CommandError) as exc:  # flush wraps the database's error in a CommandError
                if not _is_deadlock(exc) or attempt == 5:
                    raise
                time.sleep(0.1 * attempt)

    TransactionTestCase._fixture_teardown = teardown
    yield
    TransactionTestCase._fixture_teardown = original


def _is_deadlock(exc: BaseException | None) -> bool:
    while exc is not None:
        if "deadlock detected" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@pytest.fixture
def in_process_requests():
    """Keep the test's connection open across requests, as Django's test client does.

    Schema fuzzing calls the WSGI app in the test's own transaction; Django
    would otherwise close that connection at the end of every request.
    """
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def redis():
    client = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    client.close()


class OutboxProcesses:
    """The standard pair of real processes: a relay and a worker on every queue.

    Started on first use and kept for the session; a fault test that needs
    the tables to itself stops them, and the next test that wants them starts
    them again.
    """

    def __init__(self) -> None:
        self.worker: ChildProcess | None = None
        self.relay: ChildProcess | None = None

    def ensure_started(self) -> "OutboxProcesses":
        lease = os.environ.get("TEST_OUTBOX_LEASE_SECONDS", "5")
        if self.relay is None or not self.relay.alive():
            self.relay = start_relay(OUTBOX_LEASE_SECONDS=lease)
        if self.worker is None or not self.worker.alive():
            self.worker = start_worker(OUTBOX_LEASE_SECONDS=lease)
        return self

    def ensure_stopped(self) -> None:
        for process in (self.worker, self.relay):
            if process is not None:
                process.stop()
        self.worker = self.relay = None

    def logs(self) -> str:
        parts = [f"--- {p.name} ---\n{p.output()[-4000:]}" for p in (self.worker, self.relay) if p is not None]
        return "\n".join(parts)


@pytest.fixture(scope="session")
def outbox_processes(django_db_setup, django_db_blocker):
    processes = OutboxProcesses()
    yield processes
    processes.ensure_stopped()


@pytest.fixture
def live_outbox(outbox_processes, django_db_blocker) -> OutboxProcesses:
    """A real relay and worker. Use with ``django_db(transaction=True)`` so they see the test's writes."""
    with django_db_blocker.unblock():
        return outbox_processes.ensure_started()


@pytest.fixture
def no_live_outbox(outbox_processes) -> None:
    """The standard processes stopped: the test runs its own."""
    outbox_processes.ensure_stopped()


@pytest.fixture
def relay_fans_out(settings):
    """``publish`` leaves each event for the relay to fan out (``OUTBOX_DISPATCH_ON_COMMIT=false``).

    For tests of the relay's own fan-out, the path every event took before
    publish created deliveries itself, and the safety net for events that
    did not get them.
    """
    settings.OUTBOX = {**settings.OUTBOX, "DISPATCH_ON_COMMIT": False}


@pytest.fixture
def alice(db):
    """A customer with a name, signed in by ``signed_in``."""
    return make_user("alice", first_name="Alice", last_name="Liddell")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def signed_in(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client
