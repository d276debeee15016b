"""Shared fixtures. The suite runs on a real PostgreSQL and a real Redis, or not at all."""

import os

import psycopg
import pytest
import redis as redis_lib
from django.conf import settings

from tests.support.processes import ChildProcess, start_relay, start_worker

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


@pytest.fixture
def redis():
    client = redis_lib.Redis.from_url(settings.CELERY_BROKER_URL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def live_outbox(django_db_setup, django_db_blocker):
    """A real worker on every queue and a real relay process, for the whole session.

    Tests that use it must be ``django_db(transaction=True)`` so what they
    write is committed and visible to the worker.
    """
    with django_db_blocker.unblock():
        lease = os.environ.get("TEST_OUTBOX_LEASE_SECONDS", "5")
        relay = start_relay(OUTBOX_LEASE_SECONDS=lease)
        worker = start_worker(OUTBOX_LEASE_SECONDS=lease)
    yield LiveOutbox(worker=worker, relay=relay)
    worker.stop()
    relay.stop()


class LiveOutbox:
    def __init__(self, *, worker: ChildProcess, relay: ChildProcess) -> None:
        self.worker = worker
        self.relay = relay

    def logs(self) -> str:
        return f"--- worker ---\n{self.worker.output()[-4000:]}\n--- relay ---\n{self.relay.output()[-2000:]}"
