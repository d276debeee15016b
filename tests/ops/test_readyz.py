"""GET /readyz: may this process take traffic? The database, broker and cache answer, and no migration is pending.

/healthz stays the cheaper check of the database and broker (test_healthz.py). Like it, /readyz says only "ok"
or "fail" per part, to anyone; why is in the log. Through a real gunicorn: its broker and cache (a throwaway
redis-server) really stop, and a migration of the test database is really unrecorded.
"""

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from config import views
from tests.support.processes import wait_for
from tests.support.web import RedisServer, start_web

pytestmark = pytest.mark.django_db

READY = {
    "status": "ok",
    "failing": [],
    "checks": {"database": "ok", "broker": "ok", "cache": "ok", "migrations": "ok"},
}


@pytest.fixture(autouse=True)
def _probe_afresh():
    for probe in (views.broker_probe, views.migrations_probe):
        probe.forget()
    yield
    for probe in (views.broker_probe, views.migrations_probe):
        probe.forget()


def test_ready_when_every_part_answers_and_every_migration_is_applied(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == READY


def test_anyone_may_ask_but_only_read(client):
    assert client.head("/readyz").status_code == 200
    assert client.post("/readyz").status_code == 405


@pytest.fixture
def unapplied():
    """The last migration of ``customers`` unrecorded, as on a database this release has not migrated yet.

    Only its row in django_migrations: ``migrate`` would run it again. Recorded again afterwards, whatever happens.
    """
    recorder = MigrationRecorder(connection)
    leaf = max(name for app, name in MigrationLoader(connection).graph.leaf_nodes() if app == "customers")
    recorder.record_unapplied("customers", leaf)
    yield f"customers.{leaf}"
    if ("customers", leaf) not in recorder.applied_migrations():
        recorder.record_applied("customers", leaf)


@pytest.mark.django_db(transaction=True)
def test_not_ready_while_a_migration_is_pending_and_ready_once_it_is_applied(client, unapplied, caplog):
    # when
    response = client.get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json()["failing"] == ["migrations"]
    assert unapplied not in response.content.decode()
    assert f"readyz: 1 migrations not applied: {unapplied}" in caplog.text
    # when it is applied (recorded), and the last answer has expired
    MigrationRecorder(connection).record_applied(*unapplied.split("."))
    views.migrations_probe.forget()
    # then
    assert client.get("/readyz").json() == READY


# Through a real gunicorn


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.faults
def test_the_broker_and_cache_stopping_make_it_unready_and_their_errors_stay_in_the_log(redis_server):
    # given a web process whose broker and cache are one redis-server, as in production, which then stops
    web = start_web(
        broker_url=redis_server.url, TEST_CACHE_URL=redis_server.cache_url, HEALTHZ_BROKER_CACHE_SECONDS="0"
    )
    try:
        assert web.get("/readyz").json() == READY
        redis_server.shutdown()
        # when anyone asks
        answer = web.get("/readyz", timeout=30)
        # then both are named, nothing says why
        assert answer.status == 503
        assert answer.json() == {
            "status": "unavailable",
            "failing": ["broker", "cache"],
            "checks": {"database": "ok", "broker": "fail", "cache": "fail", "migrations": "ok"},
        }
        for detail in (str(redis_server.port), "127.0.0.1", "refused", "rror"):
            assert detail not in answer.body.decode(), detail
        # while the log says what failed, where
        log = web.process.output()
        assert "readyz: the cache does not answer" in log
        assert f"127.0.0.1:{redis_server.port}. Connection refused." in log
        # when it is back, it is ready again
        redis_server.start()
        wait_for(lambda: web.get("/readyz").status == 200, timeout=30, interval=0.2, what=web.logs)
    finally:
        web.stop()


@pytest.mark.django_db(transaction=True)
def test_a_release_started_before_its_migrate_is_unready_until_migrate_has_run(unapplied):
    # given a web process started on a database that lacks one of its migrations
    web = start_web(HEALTHZ_BROKER_CACHE_SECONDS="0.2")
    try:
        # then it is alive, but not ready
        assert web.get("/healthz").status == 200
        answer = web.get("/readyz")
        assert answer.status == 503
        assert answer.json()["checks"] == {"database": "ok", "broker": "ok", "cache": "ok", "migrations": "fail"}
        assert f"readyz: 1 migrations not applied: {unapplied}" in web.process.output()
        # when migrate has run (recorded the migration)
        MigrationRecorder(connection).record_applied(*unapplied.split("."))
        # then it becomes ready, without a restart
        wait_for(lambda: web.get("/readyz").status == 200, timeout=15, interval=0.1, what=web.logs)
    finally:
        web.stop()
