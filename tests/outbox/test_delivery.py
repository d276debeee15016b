"""Delivery through real processes: a relay, a Celery worker, Redis and PostgreSQL."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from outbox.dispatch import new_dispatch_token
from outbox.models import Delivery, InboxEntry, OutboxEvent
from outbox.publishing import publish
from outbox.tasks import run_deliveries
from tests.outbox.conftest import store_raw_event, wait_until_finished
from tests.outbox.probe.events import Pinged, Slept
from tests.outbox.probe.models import Effect
from tests.support.broker import in_flight_delivery_ids
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def test_a_committed_event_is_handled_once_by_each_of_its_three_handlers(live_outbox):
    # given three handlers subscribed to probe.Pinged (a, b and c)
    thing = uuid.uuid4()
    # when
    with transaction.atomic():
        event = publish(Pinged(thing_id=thing, seq=1))
    # then
    wait_for(lambda: Effect.objects.filter(event_id=event.event_id).count() >= 3, timeout=20, what=live_outbox.logs)
    effects = Effect.objects.filter(event_id=event.event_id)
    assert sorted(effects.values_list("handler", flat=True)) == ["a", "b", "c"]
    wait_for(lambda: not Delivery.objects.filter(event=event).exclude(status="done").exists(), timeout=10)
    deliveries = Delivery.objects.filter(event=event)
    assert {(d.handler, d.status, d.attempts) for d in deliveries} == {
        ("probe.record_a", "done", 1),
        ("probe.record_b", "done", 1),
        ("probe.record_c", "done", 1),
    }
    assert InboxEntry.objects.filter(event_id=event.event_id).count() == 3


def test_a_stored_v1_payload_reaches_the_handler_as_the_current_version(live_outbox):
    # given a v1 row, as the code of last year wrote it (price: float, currency)
    thing = uuid.uuid4()
    row = store_raw_event(
        type="probe.Priced", version=1, payload={"thing_id": str(thing), "price": 9.99, "currency": "eur"}
    )
    # when it is delivered
    wait_until_finished(row, what=live_outbox.logs)
    # then the handler saw a v2 event with Money(Decimal)
    assert Effect.objects.get(event_id=row.event_id, handler="price").note == "Decimal:9.99:EUR"


def test_poison_events_are_dead_lettered_and_the_events_after_them_flow(live_outbox):
    # given an unknown type and an invalid payload, then a good event
    unknown = store_raw_event(type="probe.Unheard", version=1, payload={"x": 1})
    invalid = store_raw_event(type="probe.Pinged", version=1, payload={"thing_id": 42})
    with transaction.atomic():
        good = publish(Pinged(thing_id=uuid.uuid4()))
    # then
    assert {d.status for d in wait_until_finished(good, what=live_outbox.logs)} == {"done"}
    [unknown_letter] = wait_until_finished(unknown)
    assert unknown_letter.status == "dead"
    assert "Unknown event type 'probe.Unheard'" in unknown_letter.last_error
    invalid_letters = wait_until_finished(invalid)
    assert {d.status for d in invalid_letters} == {"dead"}
    assert all("payload is invalid" in d.last_error and d.attempts == 1 for d in invalid_letters)


@pytest.mark.usefixtures("relay_fans_out")  # the test sends the tasks itself
def test_the_same_delivery_task_sent_twice_runs_the_handler_body_once(live_outbox, redis):
    # given a dispatched delivery to a slow handler, and its task sent twice at once
    delivery = _dispatched_by_hand(Slept(thing_id=uuid.uuid4(), seconds=1.0), "probe.slow", lease_seconds=60)
    run_deliveries.apply_async(([delivery.id],), queue="probe")
    run_deliveries.apply_async(([delivery.id],), queue="probe")
    # when both have been consumed
    wait_for(lambda: Delivery.objects.get(id=delivery.id).status == "done", timeout=20, what=live_outbox.logs)
    wait_for(lambda: delivery.id not in in_flight_delivery_ids(redis, "probe"), timeout=20, what="both consumed")
    # then
    assert redis.llen(f"probe:slow:{delivery.event.event_id}") == 1  # the body started once
    assert Effect.objects.filter(handler="slow").count() == 1


@pytest.mark.usefixtures("relay_fans_out")  # the test sends the tasks itself
def test_a_copy_of_the_task_sent_while_its_handler_runs_does_not_run_it_again(live_outbox, redis):
    # given a handler that takes 2 s (within the soft limit), started by a worker, which renewed its lease
    delivery = _dispatched_by_hand(Slept(thing_id=uuid.uuid4(), seconds=2.0), "probe.slow", lease_seconds=1)
    run_deliveries.apply_async(([delivery.id], delivery.dispatch_token), queue="probe")
    wait_for(lambda: redis.llen(f"probe:slow:{delivery.event.event_id}") == 1, timeout=10, what="the handler to start")
    started = Delivery.objects.get(id=delivery.id)
    assert started.due_at > timezone.now() + timedelta(seconds=2)  # the short lease was renewed at the start
    # when a second copy of its task arrives meanwhile
    run_deliveries.apply_async(([delivery.id], delivery.dispatch_token), queue="probe")
    # then
    wait_for(lambda: Delivery.objects.get(id=delivery.id).status == "done", timeout=20, what=live_outbox.logs)
    wait_for(lambda: delivery.id not in in_flight_delivery_ids(redis, "probe"), timeout=20, what="all consumed")
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.crashes) == (1, 0)
    assert redis.llen(f"probe:slow:{delivery.event.event_id}") == 1
    assert Effect.objects.filter(handler="slow").count() == 1


def _dispatched_by_hand(event, handler: str, *, lease_seconds: float) -> Delivery:
    """A delivery as the relay leaves it, without the relay sending its task."""
    with transaction.atomic():
        row = publish(event)
        OutboxEvent.objects.filter(id=row.id).update(relayed_at=timezone.now())
        now = timezone.now()
        return Delivery.objects.create(
            event=row,
            handler=handler,
            queue="probe",
            status="dispatched",
            dispatched_at=now,
            dispatch_token=new_dispatch_token(),
            due_at=now + timedelta(seconds=lease_seconds),
        )
