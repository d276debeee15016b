import uuid

import pytest
from django.db import transaction

from outbox.breaker import handler_pause
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import PublishOutsideTransaction, publish
from tests.outbox.probe.events import Pinged, Stepped
from tests.outbox.probe.models import Effect
from tests.support.broker import queued_delivery_batches, queued_task_args
from tests.support.processes import start_worker, wait_for

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


@pytest.mark.usefixtures("relay_fans_out")
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


def test_a_committed_event_has_its_deliveries_dispatched_and_their_tasks_sent_at_commit(no_live_outbox, redis):
    # given nothing queued
    redis.delete("probe")
    # when a transaction publishes two events of a type three handlers subscribe to
    with transaction.atomic():
        rows = [publish(Pinged(thing_id=uuid.uuid4())) for _ in range(2)]
        # then before the commit nothing is sent
        assert queued_task_args(redis, "probe") == []
    # and after it, both events are relayed, each with a dispatched delivery per handler, under one token
    deliveries = Delivery.objects.filter(event__in=rows)
    assert all(OutboxEvent.objects.get(id=row.id).relayed_at is not None for row in rows)
    assert sorted(deliveries.values_list("handler", "status", "attempts")) == sorted(
        [(f"probe.record_{x}", "dispatched", 0) for x in "abc"] * 2
    )
    [token] = set(deliveries.values_list("dispatch_token", flat=True))
    # and one task per handler carries both events' deliveries, with that token
    assert sorted(sorted(batch) for batch in queued_delivery_batches(redis, "probe")) == sorted(
        sorted(deliveries.filter(handler=f"probe.record_{x}").values_list("id", flat=True)) for x in "abc"
    )
    assert {args[1] for args in queued_task_args(redis, "probe")} == {token}
    redis.delete("probe")


def test_a_rolled_back_savepoint_sends_nothing_of_what_it_published(no_live_outbox, redis):
    # given nothing queued
    redis.delete("probe")
    # when one event is published in a savepoint that rolls back, and another after it
    with transaction.atomic():
        with pytest.raises(Boom), transaction.atomic():
            publish(Pinged(thing_id=uuid.uuid4()))
            raise Boom
        kept = publish(Pinged(thing_id=uuid.uuid4()))
    # then only the kept event's deliveries exist, and only they were sent
    ids = sorted(Delivery.objects.values_list("id", flat=True))
    assert sorted(Delivery.objects.values_list("event_id", flat=True)) == [kept.id] * 3
    assert sorted(i for batch in queued_delivery_batches(redis, "probe") for i in batch) == ids
    redis.delete("probe")


def test_an_ordered_or_held_back_handlers_delivery_is_created_pending_for_the_relay(no_live_outbox, redis):
    # given a paused handler
    redis.delete("probe")
    handler_pause(handler="probe.record_b")
    # when events for an ordered handler and for the paused one are published
    with transaction.atomic():
        step = publish(Stepped(thing_id=uuid.uuid4(), seq=1))
        ping = publish(Pinged(thing_id=uuid.uuid4()))
    # then those deliveries wait, pending, with no token, and only the others are sent
    assert Delivery.objects.get(event=step).status == "pending"
    assert Delivery.objects.get(event=step).ordering_key == f"probe.Thing:{step.aggregate_id}"
    statuses = dict(Delivery.objects.filter(event=ping).values_list("handler", "status"))
    assert statuses == {"probe.record_a": "dispatched", "probe.record_b": "pending", "probe.record_c": "dispatched"}
    assert not Delivery.objects.filter(status="pending", dispatch_token__isnull=False).exists()
    sent = sorted(i for batch in queued_delivery_batches(redis, "probe") for i in batch)
    assert sent == sorted(Delivery.objects.filter(status="dispatched").values_list("id", flat=True))
    redis.delete("probe")


@pytest.mark.workers
def test_published_events_reach_their_handlers_through_a_worker_alone(no_live_outbox):
    # given a real worker, and no relay of any kind (no relay process, no beat)
    worker = start_worker(queues="outbox,probe", concurrency=1)
    try:
        # when an event is published
        with transaction.atomic():
            row = publish(Pinged(thing_id=uuid.uuid4()))
        # then each handler records it once
        wait_for(lambda: Effect.objects.filter(event_id=row.event_id).count() == 3, timeout=20, what=worker.output)
    finally:
        worker.stop()
    assert sorted(Effect.objects.filter(event_id=row.event_id).values_list("handler", flat=True)) == ["a", "b", "c"]
    assert set(Delivery.objects.filter(event=row).values_list("status", "attempts")) == {("done", 1)}
