"""RabbitMQ works as the broker as well as Redis: the outbox only needs a Celery transport."""

import uuid

import pytest
from django.db import transaction

from outbox.publishing import publish
from tests.outbox.conftest import wait_until_finished
from tests.outbox.probe.events import Pinged
from tests.support.processes import start_relay, start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def test_events_are_delivered_through_rabbitmq(no_live_outbox):
    # given a relay and a worker whose broker is RabbitMQ
    relay = start_relay(TEST_BROKER_URL=RABBITMQ)
    worker = start_worker(queues="probe", TEST_BROKER_URL=RABBITMQ)
    try:
        # when
        with transaction.atomic():
            event = publish(Pinged(thing_id=uuid.uuid4()))
        # then
        deliveries = wait_until_finished(event, what=lambda: worker.output()[-3000:])
        assert {(d.status, d.attempts) for d in deliveries} == {("done", 1)}
        assert "amqp://guest:**@127.0.0.1:5672//" in worker.output()
    finally:
        worker.stop()
        relay.stop()
