"""The suite's own brokers go away and come back on the same URL, empty when asked to: the faults the driver injects.

Each kind runs its own server (a redis-server, a whole RabbitMQ node) on spare
ports; the shared ones are never touched.
"""

import queue
import time

import kombu
import pytest

from tests.faults.conftest import BROKER_KINDS
from tests.support.brokers import Broker, start_broker
from tests.support.processes import wait_for

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module", params=BROKER_KINDS)
def broker(request):
    """One broker of each kind for the module (a RabbitMQ node takes seconds to start); each test leaves it up."""
    started = start_broker(request.param)
    yield started
    started.remove()


def put(url: str, message: dict) -> None:
    with kombu.Connection(url) as connection, connection.SimpleQueue("probe") as probe:
        probe.put(message)


def count_waiting(url: str) -> int:
    with kombu.Connection(url) as connection, connection.SimpleQueue("probe") as probe:
        return probe.qsize()


def take(url: str, count: int) -> list[dict]:
    """Take ``count`` messages off the probe queue, then check that no more are waiting."""
    with kombu.Connection(url) as connection, connection.SimpleQueue("probe") as probe:
        taken = [probe.get(timeout=5) for _ in range(count)]
        for message in taken:
            message.ack()
        with pytest.raises(queue.Empty):
            probe.get_nowait()
        return [message.payload for message in taken]


def test_a_broker_stopped_is_gone_and_started_again_answers_on_the_same_url(broker: Broker):
    # given a broker that answers
    assert isinstance(broker, Broker)
    assert broker.answers()
    url = broker.url
    # when it stops
    broker.stop()
    # then its processes are gone and it does not answer
    assert not broker.process.alive()
    assert broker.process.leftovers() == []
    assert not broker.answers()
    # when it starts again
    broker.start()
    # then it answers on the same URL, and carries messages
    assert broker.url == url
    put(url, {"n": 1})
    assert take(url, 1) == [{"n": 1}]


def test_a_broker_restarted_empty_stays_down_as_long_as_asked_and_comes_back_with_nothing(broker: Broker):
    # given messages waiting in a durable queue
    for n in range(3):
        put(broker.url, {"n": n})
    wait_for(lambda: count_waiting(broker.url) == 3, timeout=5, what="three messages to wait in the queue")
    # when it restarts empty after two seconds down
    began = time.monotonic()
    broker.restart_empty(down_for=2)
    # then it was away at least that long, answers again, and the messages are gone
    assert time.monotonic() - began >= 2
    assert broker.answers(), broker.logs()
    assert take(broker.url, 0) == []
    # and it works as before
    put(broker.url, {"n": 99})
    assert take(broker.url, 1) == [{"n": 99}]
