"""The chaos driver's REST client retries what is safe to retry and records every exchange.

Against a real gunicorn whose broker (a redis-server of the test's own) is
stopped, ``/healthz`` answers 503: the client waits and asks again, each time
with its own request id, until the site answers or its time is up.
"""

import threading

import pytest

from tests.support.rest import ShopClient, _retry_after
from tests.support.web import RedisServer, free_port, start_web

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def broker():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(broker, django_db_setup):
    # The client's retries are under test, not /healthz's cache: the site answers its broker's state at once.
    server = start_web(broker_url=broker.url, HEALTHZ_BROKER_CACHE_SECONDS="0")
    yield server
    server.stop()


@pytest.fixture
def broker_down(broker):
    broker.stop()
    yield broker
    if not broker.answers():
        broker.start()


def test_a_503_is_asked_again_until_the_site_answers(web, broker_down):
    # given a site answering 503 until its broker is back, in about a second
    comes_back = threading.Timer(1.0, broker_down.start)
    comes_back.start()
    shop = ShopClient(web.url, retry_for=20, retry_after_cap=0.2)
    # when the client asks
    reply = shop.request("GET", "/healthz")
    comes_back.join()
    # then it asked until the answer was 200, each answer with a request id of the server's own
    statuses = [e.status for e in reply.exchanges]
    assert reply.status == 200, statuses
    assert len(statuses) >= 2, statuses
    assert set(statuses[:-1]) == {503}
    assert [e.attempt for e in reply.exchanges] == list(range(1, len(statuses) + 1))
    assert len({e.request_id for e in reply.exchanges}) == len(statuses)
    assert reply.headers["X-Request-ID"] == reply.request_id
    # and the log holds every exchange, the 503s among the server errors
    assert shop.log.exchanges() == reply.exchanges
    assert shop.log.server_errors() == reply.exchanges[:-1]


def test_the_last_503_is_the_answer_once_the_time_to_retry_is_spent(web, broker_down):
    # given a site that keeps answering 503
    shop = ShopClient(web.url, retry_for=1.0, retry_after_cap=0.2)
    # when the client asks
    reply = shop.request("GET", "/healthz")
    # then it gave up with the 503, after trying several times
    assert reply.status == 503
    assert len(reply.exchanges) >= 3
    assert reply.data["failing"] == ["broker"]


def test_no_answer_is_retried_and_recorded_with_why():
    # given nothing listening where the client calls
    shop = ShopClient(f"http://127.0.0.1:{free_port()}", retry_for=1.0)
    # when it asks
    reply = shop.request("GET", "/healthz")
    # then it tried several times and recorded each refusal
    assert reply.status is None
    assert reply.data is None
    assert len(shop.log.unanswered()) == len(reply.exchanges) >= 3
    assert all("Connection refused" in e.error for e in reply.exchanges), reply.exchanges


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("", 1.0), ("soon", 1.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_is_read_as_seconds_or_a_date(header, seconds):
    assert _retry_after(header) == seconds
