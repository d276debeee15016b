"""The handler runner, in-process: one transaction per batch, a savepoint per delivery only when one fails."""

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from outbox.models import Delivery, InboxEntry, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import backoff_seconds, run_deliveries
from outbox.subscriptions import Subscription, subscriptions
from tests.outbox.conftest import store_raw_event
from tests.outbox.probe.events import Broke, Pinged
from tests.outbox.probe.models import Effect, Switch

pytestmark = pytest.mark.django_db


def _dispatched(event, handler: str) -> Delivery:
    with transaction.atomic():
        row = publish(event)
    fan_out(batch_size=100)
    return Delivery.objects.get(event=row, handler=handler)


def test_a_delivery_runs_its_handler_and_records_inbox_and_done_together():
    delivery = _dispatched(Pinged(thing_id=uuid.uuid4(), seq=4), "probe.record_a")
    report = run_deliveries([delivery.id])
    delivery.refresh_from_db()
    assert report.done == [delivery.id]
    assert delivery.status == "done"
    assert Effect.objects.get(handler="a", event_id=delivery.event.event_id).seq == 4
    assert InboxEntry.objects.filter(handler="probe.record_a", event_id=delivery.event.event_id).count() == 1


def test_running_the_same_delivery_twice_runs_the_handler_once():
    delivery = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_a")
    run_deliveries([delivery.id])
    second = run_deliveries([delivery.id])
    assert second.skipped == [delivery.id]
    assert Effect.objects.filter(handler="a").count() == 1


def test_a_delivery_whose_inbox_row_exists_is_acknowledged_without_running_the_handler():
    # given the handler already handled the event (say, through an older delivery)
    delivery = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_a")
    InboxEntry.objects.create(handler="probe.record_a", event_id=delivery.event.event_id)
    # when
    report = run_deliveries([delivery.id])
    # then
    delivery.refresh_from_db()
    assert (report.done, delivery.status) == ([delivery.id], "done")
    assert not Effect.objects.exists()


def test_a_failure_rolls_back_the_handlers_effects_and_schedules_a_retry():
    # given a handler that fails
    Switch.objects.create(name="broken", on=True)
    delivery = _dispatched(Broke(thing_id=uuid.uuid4()), "probe.breakable")
    # when
    report = run_deliveries([delivery.id])
    # then
    delivery.refresh_from_db()
    assert report.failed == [delivery.id]
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "ValueError: the probe is broken" in delivery.last_error
    assert "Traceback" in delivery.traceback
    assert not InboxEntry.objects.exists()


def test_one_failing_delivery_does_not_undo_the_others_in_its_batch():
    Switch.objects.create(name="broken", on=True)
    good = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_a")
    bad = _dispatched(Broke(thing_id=uuid.uuid4()), "probe.breakable")
    report = run_deliveries([good.id, bad.id])
    assert (report.done, report.failed) == ([good.id], [bad.id])
    assert Effect.objects.filter(handler="a").count() == 1


@pytest.mark.parametrize("size", [2, 6])
def test_a_batch_that_succeeds_runs_without_a_savepoint_per_delivery(size):
    # given a batch of deliveries whose handlers all succeed
    deliveries = [_dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_a") for _ in range(size)]
    # when
    with CaptureQueriesContext(connection) as queries:
        report = run_deliveries([d.id for d in deliveries])
    # then all are done, and the batch took one savepoint (its own, inside the test's transaction), not one each
    assert sorted(report.done) == sorted(d.id for d in deliveries)
    assert len([q for q in queries if q["sql"].startswith("SAVEPOINT")]) == 1
    assert Effect.objects.filter(handler="a").count() == size


def test_a_batch_with_a_failure_runs_again_isolated_so_the_others_commit_once():
    # given a batch of two good deliveries around one that fails
    Switch.objects.create(name="broken", on=True)
    first = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_a")
    bad = _dispatched(Broke(thing_id=uuid.uuid4()), "probe.breakable")
    last = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.record_b")
    # when
    report = run_deliveries([first.id, bad.id, last.id])
    # then the failure is the bad one's alone: one attempt spent, the others done, each effect recorded once
    assert (sorted(report.done), report.failed) == (sorted([first.id, last.id]), [bad.id])
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == ("pending", 1)
    assert sorted(Effect.objects.values_list("handler", flat=True)) == ["a", "b"]
    assert InboxEntry.objects.count() == 2


def test_the_last_failed_attempt_makes_the_delivery_dead_with_its_traceback():
    Switch.objects.create(name="broken", on=True)
    delivery = _dispatched(Broke(thing_id=uuid.uuid4()), "probe.breakable")
    Delivery.objects.filter(id=delivery.id).update(attempts=2)  # this run starts the 3rd, probe.breakable's last
    report = run_deliveries([delivery.id])
    delivery.refresh_from_db()
    assert report.dead == [delivery.id]
    assert delivery.status == "dead"
    assert "raise ValueError" in delivery.traceback


def test_an_invalid_payload_goes_straight_to_dead_with_a_readable_error():
    row = store_raw_event(type="probe.Pinged", version=1, payload={"thing_id": "nonsense"})
    fan_out(batch_size=100)
    ids = list(Delivery.objects.filter(event=row).values_list("id", flat=True))
    report = run_deliveries(ids)
    assert sorted(report.dead) == sorted(ids)
    errors = set(Delivery.objects.filter(event=row).values_list("last_error", flat=True))
    assert len(errors) == 1
    assert "probe.Pinged v1 payload is invalid" in errors.pop()


def test_events_published_by_a_handler_are_caused_by_the_handled_event():
    # given a handler that publishes
    def echo(event, envelope):
        publish(Broke(thing_id=event.thing_id))

    sub = subscriptions.add(Subscription(Pinged, echo), app_label="probe")
    try:
        delivery = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.echo")
        # when
        run_deliveries([delivery.id])
    finally:
        subscriptions.remove(sub.name)
    # then
    handled = delivery.event
    caused = OutboxEvent.objects.get(type="probe.Broke")
    assert caused.causation_id == handled.event_id
    assert caused.correlation_id == handled.correlation_id


def test_a_handler_knows_which_attempt_it_is_on():
    # given a handler that notes its envelope's attempt
    seen = []

    def note(event, envelope):
        seen.append((envelope.attempt, envelope.max_attempts, envelope.is_last_attempt))

    sub = subscriptions.add(Subscription(Pinged, note, max_attempts=4), app_label="probe")
    try:
        delivery = _dispatched(Pinged(thing_id=uuid.uuid4()), "probe.note")
        Delivery.objects.filter(id=delivery.id).update(attempts=3)  # three failed: this start is the 4th
        # when
        run_deliveries([delivery.id])
    finally:
        subscriptions.remove(sub.name)
    # then
    assert seen == [(4, 4, True)]


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5])
def test_backoff_grows_with_every_attempt_until_its_cap(attempts):
    sub = subscriptions.get("probe.flaky")  # base 0.3 s, cap 5 s
    delays = [backoff_seconds(sub, n) for n in (attempts, attempts + 1)]
    assert delays[0] < delays[1] or delays[1] >= 5 * 0.8
    assert all(0 < d <= 5 for d in delays)
