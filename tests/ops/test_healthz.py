"""GET /healthz: the checks and the shape of the answer, in-process and through a real gunicorn.

Anyone may ask, so a failing part is only "fail": its error, which names hosts, ports and users, is in the
web process's log. The broker probe opens a connection, so each process reuses its answer for
HEALTHZ_BROKER_CACHE_SECONDS. (The broker really stopping and coming back: test_healthz_faults.)
"""

import http.client
import json

import pytest
import redis

from config import views
from tests.support.processes import wait_for
from tests.support.web import RedisServer, free_port, launch_web, start_web

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _probe_the_broker_afresh():
    views.broker_probe.forget()
    yield
    views.broker_probe.forget()


def test_healthy_when_the_database_and_broker_answer(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failing": [], "checks": {"database": "ok", "broker": "ok"}}


def test_anyone_may_ask_without_signing_in(client):
    assert client.get("/healthz").status_code == 200
    assert client.head("/healthz").status_code == 200


# Through a real gunicorn


@pytest.fixture
def broker():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_failing_database_and_broker_are_named_but_their_errors_stay_in_the_log():
    # given a web process whose database and broker refuse connections (ports nothing listens on)
    database_port, broker_port = free_port(), free_port()
    web = start_web(
        broker_url=f"redis://127.0.0.1:{broker_port}/0",
        TEST_DATABASE_URL=f"postgres://healthz_db_user@127.0.0.1:{database_port}/healthz_db",
    )
    try:
        # when anyone asks
        answer = web.get("/healthz")
        # then each failing part is named, and nothing says why
        assert answer.status == 503
        assert answer.json() == {
            "status": "unavailable",
            "failing": ["database", "broker"],
            "checks": {"database": "fail", "broker": "fail"},
        }
        for detail in (str(database_port), str(broker_port), "127.0.0.1", "healthz_db", "refused", "rror"):
            assert detail not in answer.body.decode(), detail
        # while the log says what failed, where
        log = web.process.output()
        assert "healthz: the database does not answer" in log
        assert f'connection to server at "127.0.0.1", port {database_port} failed: Connection refused' in log
        assert "healthz: the broker does not answer" in log
        assert f"connecting to 127.0.0.1:{broker_port}. Connection refused." in log
    finally:
        web.stop()


def _connections_received(counter: redis.Redis) -> int:
    return counter.info("stats")["total_connections_received"]


def _healthz(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    response = conn.getresponse()
    assert json.loads(response.read())["checks"]["broker"] == "ok"
    conn.close()
    return response.status


def _home_answers(port: int) -> bool:
    """The front page, which needs no broker: the server is up without having probed it."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("cache_seconds", "connections"), [(None, 1), ("0", 2)], ids=["the default", "no cache"])
def test_two_quick_calls_open_one_broker_connection(broker, cache_seconds, connections):
    # given a web process of its own on a broker of its own, which has not probed it yet
    counter = redis.Redis(port=broker.port)
    env = {} if cache_seconds is None else {"HEALTHZ_BROKER_CACHE_SECONDS": cache_seconds}
    web = launch_web(broker_url=broker.url, **env)
    try:
        wait_for(lambda: _home_answers(web.port), timeout=60, interval=0.1, what=web.logs)
        before = _connections_received(counter)
        # when /healthz is asked twice in a row
        assert [_healthz(web.port), _healthz(web.port)] == [200, 200]
        # then the broker saw one connection from it (each call one, without the cache)
        assert _connections_received(counter) - before == connections
    finally:
        web.stop()
        counter.close()
