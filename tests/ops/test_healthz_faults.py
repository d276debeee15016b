"""/healthz over real HTTP while the broker really stops and comes back.

The broker is a throwaway redis-server of the test's own, never the shared
one: the web server (gunicorn, as deployed) is pointed at it.
"""

import pytest

from tests.support.processes import wait_for
from tests.support.web import RedisServer, start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]


@pytest.fixture
def broker():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def web(broker):
    server = start_web(TEST_BROKER_URL=broker.url)
    yield server
    server.stop()


def test_healthz_names_the_broker_while_it_is_down_and_recovers_when_it_is_back(broker, web):
    # given a healthy site
    assert web.get("/healthz").status == 200
    # when the broker stops
    broker.shutdown()
    # then /healthz says 503 and names the broker, while the database is fine, once the web's last probe
    # (reused for HEALTHZ_BROKER_CACHE_SECONDS) has expired
    down = wait_for(
        lambda: (answer := web.get("/healthz", timeout=15)).status == 503 and answer,
        timeout=30,
        interval=0.5,
        what="/healthz to notice the broker is down",
    )
    assert down.json() == {
        "status": "unavailable",
        "failing": ["broker"],
        "checks": {"database": "ok", "broker": "fail"},
    }
    # when it is started again on the same port
    broker.start()
    # then /healthz recovers
    wait_for(lambda: web.get("/healthz").status == 200, timeout=30, interval=0.5, what="/healthz to recover")
    assert web.get("/healthz").json() == {
        "status": "ok",
        "failing": [],
        "checks": {"database": "ok", "broker": "ok"},
    }
