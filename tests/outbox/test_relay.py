"""The relay's claims, in-process: which deliveries it creates and dispatches, and when."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from outbox.models import UNKNOWN_TYPE_HANDLER, Delivery
from outbox.publishing import publish
from outbox.relay import dispatch_due, fan_out
from tests.outbox.conftest import store_raw_event
from tests.outbox.probe.events import Pinged, Stepped
from tests.support.broker import queued_delivery_batches

pytestmark = pytest.mark.django_db


def _publish(*events):
    with transaction.atomic():
        return [publish(e) for e in events]


def test_fan_out_creates_one_dispatched_delivery_per_subscribed_handler():
    # given
    [event] = _publish(Pinged(thing_id=uuid.uuid4()))
    # when
    stats = fan_out(batch_size=100)
    # then
    assert (stats.fanned_out, stats.dispatched) == (1, 3)
    rows = Delivery.objects.filter(event=event).order_by("handler")
    assert [(d.handler, d.queue, d.status, d.attempts) for d in rows] == [
        ("probe.record_a", "probe", "dispatched", 1),
        ("probe.record_b", "probe", "dispatched", 1),
        ("probe.record_c", "probe", "dispatched", 1),
    ]
    event.refresh_from_db()
    assert event.relayed_at is not None
    assert fan_out(batch_size=100).fanned_out == 0  # never twice


def test_an_event_of_unknown_type_becomes_a_dead_letter_and_does_not_block_the_next():
    # given a row no class can read, then a good one
    poison = store_raw_event(type="probe.FromTheFuture", version=1, payload={})
    [good] = _publish(Pinged(thing_id=uuid.uuid4()))
    # when
    fan_out(batch_size=100)
    # then
    dead = Delivery.objects.get(event=poison)
    assert (dead.handler, dead.status) == (UNKNOWN_TYPE_HANDLER, "dead")
    assert "Unknown event type 'probe.FromTheFuture'" in dead.last_error
    assert Delivery.objects.filter(event=good, status="dispatched").count() == 3


def test_an_ordered_handler_gets_only_the_oldest_unfinished_event_of_an_aggregate():
    # given three steps of one thing and one of another
    a, b = uuid.uuid4(), uuid.uuid4()
    events = _publish(Stepped(thing_id=a, seq=1), Stepped(thing_id=a, seq=2), Stepped(thing_id=b, seq=1))
    fan_out(batch_size=100)
    # when
    dispatch_due(batch_size=100)
    # then
    status = {e.id: Delivery.objects.get(event=e).status for e in events}
    assert [status[e.id] for e in events] == ["dispatched", "pending", "dispatched"]
    # when the first is done, the second is released
    Delivery.objects.filter(event=events[0]).update(status="done")
    dispatch_due(batch_size=100)
    assert Delivery.objects.get(event=events[1]).status == "dispatched"


def test_a_dead_event_holds_its_aggregate_until_discarded_for_a_stop_policy_handler():
    # given a dead first step
    a = uuid.uuid4()
    first, second = _publish(Stepped(thing_id=a, seq=1), Stepped(thing_id=a, seq=2))
    fan_out(batch_size=100)
    Delivery.objects.filter(event=first).update(status="dead")
    # when / then: held
    dispatch_due(batch_size=100)
    assert Delivery.objects.get(event=second).status == "pending"
    # when discarded (resolved), the key flows again
    Delivery.objects.filter(event=first).update(resolved_at=timezone.now())
    dispatch_due(batch_size=100)
    assert Delivery.objects.get(event=second).status == "dispatched"


def test_an_expired_lease_is_dispatched_again_and_counts_as_an_attempt():
    # given a dispatched delivery whose lease ran out
    [event] = _publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=100)
    delivery = Delivery.objects.filter(event=event).first()
    Delivery.objects.filter(id=delivery.id).update(due_at=timezone.now() - timedelta(seconds=1))
    # when
    stats = dispatch_due(batch_size=100)
    # then
    delivery.refresh_from_db()
    assert stats.dispatched == 1
    assert (delivery.status, delivery.attempts) == ("dispatched", 2)
    assert delivery.due_at > timezone.now()


def test_a_lease_that_expires_on_the_last_attempt_makes_the_delivery_dead():
    [event] = _publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=100)
    delivery = Delivery.objects.filter(event=event).first()
    Delivery.objects.filter(id=delivery.id).update(attempts=8, due_at=timezone.now() - timedelta(seconds=1))
    dispatch_due(batch_size=100)
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    assert "Lease expired on attempt 8" in delivery.last_error


def test_a_delivery_waiting_for_its_retry_time_is_not_dispatched_early():
    [event] = _publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=100)
    Delivery.objects.filter(event=event).update(status="pending", due_at=timezone.now() + timedelta(minutes=1))
    assert dispatch_due(batch_size=100).dispatched == 0


def test_dispatch_sends_one_task_per_batch_of_a_handlers_deliveries_after_commit(
    redis, settings, django_capture_on_commit_callbacks
):
    # given 5 events -> 15 deliveries over 3 handlers, batches of at most 2
    settings.OUTBOX = {**settings.OUTBOX, "TASK_BATCH_SIZE": 2}
    redis.delete("probe")
    _publish(*[Pinged(thing_id=uuid.uuid4()) for _ in range(5)])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        fan_out(batch_size=100)
    # then: 3 handlers x ceil(5 / 2) tasks, carrying every delivery id once
    batches = queued_delivery_batches(redis, "probe")
    assert len(batches) == 9
    assert all(len(b) <= 2 for b in batches)
    ids = [i for b in batches for i in b]
    assert sorted(ids) == sorted(Delivery.objects.values_list("id", flat=True))
    redis.delete("probe")
