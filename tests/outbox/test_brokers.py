"""RabbitMQ works as the broker as well as Redis: the outbox only needs a Celery transport."""

import uuid

import pytest
from django.db import transaction

from outbox.models import OutboxEvent
from outbox.publishing import publish
from tests.outbox.conftest import wait_until_finished
from tests.outbox.probe.events import Pinged
from tests.support.commands import publish_in_a_process
from tests.support.processes import start_relay, start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


def test_published_events_are_sent_at_commit_through_rabbitmq(no_live_outbox):
    # given a worker whose broker is RabbitMQ, and no relay
    worker = start_worker(queues="probe", TEST_BROKER_URL=RABBITMQ)
    try:
        # when a process whose broker is RabbitMQ publishes an event
        thing = uuid.uuid4()
        publish_in_a_process(f"Pinged(thing_id=uuid.UUID('{thing}'))", TEST_BROKER_URL=RABBITMQ)
        # then its deliveries' tasks went through RabbitMQ to the worker
        event = OutboxEvent.objects.get(aggregate_id=str(thing))
        deliveries = wait_until_finished(event, what=lambda: worker.output()[-3000:])
        assert {(d.status, d.attempts) for d in deliveries} == {("done", 1)}
        assert "amqp://guest:**@127.0.0.1:5672//" in worker.output()
    finally:
        worker.stop()


@pytest.mark.usefixtures("relay_fans_out")
def test_events_are_relayed_through_rabbitmq(no_live_outbox):
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
