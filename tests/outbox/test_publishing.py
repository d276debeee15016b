import uuid

import pytest
from django.db import transaction

from outbox.models import OutboxEvent
from outbox.publishing import PublishOutsideTransaction, publish
from tests.outbox.probe.events import Pinged
from tests.outbox.probe.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)


class Boom(Exception):
    pass


def test_an_exception_after_publish_leaves_neither_the_change_nor_the_event():
    # given a transaction that changes state, publishes, then fails
    thing = uuid.uuid4()
    # when
    with pytest.raises(Boom), transaction.atomic():
        Effect.objects.create(handler="state", event_id=thing, aggregate_id=str(thing))
        publish(Pinged(thing_id=thing))
        raise Boom
    # then
    assert not Effect.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_publish_outside_a_transaction_raises_and_writes_nothing():
    with pytest.raises(PublishOutsideTransaction, match=r"transaction\.atomic"):
        publish(Pinged(thing_id=uuid.uuid4()))
    assert not OutboxEvent.objects.exists()


def test_a_committed_event_is_stored_with_its_envelope(no_live_outbox):
    # given
    thing = uuid.uuid4()
    correlation = uuid.uuid4()
    # when
    with transaction.atomic():
        row = publish(Pinged(thing_id=thing, seq=7), correlation_id=correlation)
    # then
    stored = OutboxEvent.objects.get(id=row.id)
    assert (stored.type, stored.version) == ("probe.Pinged", 1)
    assert (stored.aggregate_type, stored.aggregate_id) == ("probe.Thing", str(thing))
    assert stored.correlation_id == correlation
    assert stored.payload == {"thing_id": str(thing), "seq": 7}
    assert stored.occurred_at.tzinfo is not None
    assert stored.relayed_at is None
