"""The relay's claims, in-process: which deliveries it creates and dispatches, and when."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from outbox.events import registry
from outbox.models import UNKNOWN_TYPE_HANDLER, Delivery
from outbox.publishing import publish
from outbox.relay import dispatch_due, fan_out
from outbox.runner import run_deliveries
from outbox.services import dead_letter_retry
from outbox.subscriptions import Subscription, subscriptions
from tests.outbox.conftest import store_raw_event
from tests.outbox.probe.events import Pinged, Stepped
from tests.outbox.probe.handlers import record_a
from tests.outbox.probe.models import Effect
from tests.support.broker import queued_delivery_batches, queued_task_args

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relay_fans_out")]


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
        ("probe.record_a", "probe", "dispatched", 0),  # no handler has started: no attempt yet
        ("probe.record_b", "probe", "dispatched", 0),
        ("probe.record_c", "probe", "dispatched", 0),
    ]
    assert len({d.dispatch_token for d in rows}) == 1  # one dispatch
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


def _dispatched_delivery(**fields) -> Delivery:
    [event] = _publish(Pinged(thing_id=uuid.uuid4()))
    fan_out(batch_size=100)
    delivery = Delivery.objects.filter(event=event).first()
    Delivery.objects.filter(id=delivery.id).update(**fields)
    delivery.refresh_from_db()
    return delivery


def _expired() -> dict:
    return {"due_at": timezone.now() - timedelta(seconds=1)}


def test_a_lease_that_ran_out_before_any_handler_started_sends_again_without_spending_an_attempt(settings):
    # given a dispatched delivery whose message never reached a handler
    delivery = _dispatched_delivery(**_expired())
    first_token = delivery.dispatch_token
    # when
    stats = dispatch_due(batch_size=100)
    # then it is sent again under a new token, its attempt unspent, after a lease twice as long
    delivery.refresh_from_db()
    assert (stats.dispatched, stats.resent) == (1, 1)
    assert (delivery.status, delivery.attempts, delivery.redispatches) == ("dispatched", 0, 1)
    assert delivery.dispatch_token != first_token
    lease = settings.OUTBOX["LEASE_SECONDS"]
    assert timezone.now() + timedelta(seconds=1.5 * lease) < delivery.due_at


def test_every_send_that_ran_out_unstarted_waits_twice_as_long_up_to_the_cap(settings):
    settings.OUTBOX = {**settings.OUTBOX, "LEASE_SECONDS": 10.0, "LEASE_CAP_SECONDS": 60.0}
    delivery = _dispatched_delivery(**_expired())
    leases = []
    for _ in range(4):
        before = timezone.now()
        dispatch_due(batch_size=100)
        delivery.refresh_from_db()
        leases.append(round((delivery.due_at - before).total_seconds()))
        Delivery.objects.filter(id=delivery.id).update(**_expired())
    assert leases == [20, 40, 60, 60]
    assert delivery.attempts == 0


def test_a_lease_that_ran_out_after_a_handler_started_records_the_lost_worker_and_sends_it_alone(
    redis, django_capture_on_commit_callbacks
):
    # given a delivery whose first attempt started and never finished (its worker vanished)
    delivery = _dispatched_delivery(attempts=1, started_at=timezone.now() - timedelta(seconds=70), **_expired())
    redis.delete("probe")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        stats = dispatch_due(batch_size=100)
    # then the lost attempt is on record, and the delivery travels in a task of its own
    delivery.refresh_from_db()
    assert (stats.dispatched, stats.lost) == (1, 1)
    assert (delivery.status, delivery.attempts, delivery.crashes, delivery.started_at) == ("dispatched", 1, 1, None)
    assert "The worker running attempt 1 of 8 was lost" in delivery.last_error
    assert queued_delivery_batches(redis, "probe") == [[delivery.id]]
    redis.delete("probe")


def test_a_lease_that_ran_out_on_the_last_allowed_attempt_makes_the_delivery_dead_naming_the_lost_worker():
    delivery = _dispatched_delivery(attempts=8, started_at=timezone.now() - timedelta(seconds=70), **_expired())
    dispatch_due(batch_size=100)
    delivery.refresh_from_db()
    assert delivery.status == "dead"
    assert "The worker was lost during attempt 8 of 8, the last allowed" in delivery.last_error


def test_a_last_attempt_lost_in_a_batch_shared_with_others_is_not_charged_and_runs_again_alone(
    redis, django_capture_on_commit_callbacks
):
    # given two deliveries started together by one runner (one statement: the same start time), both on their
    # last attempt, whose worker vanished: either may have killed it, or neither
    started = timezone.now() - timedelta(seconds=70)
    together = [_dispatched_delivery(attempts=8, started_at=started, **_expired()) for _ in range(2)]
    redis.delete("probe")
    # when the relay finds their lease run out
    with django_capture_on_commit_callbacks(execute=True):
        stats = dispatch_due(batch_size=100)
    # then neither is buried: the lost attempt is on record, not charged, and each runs it again in a task alone
    assert (stats.dead, stats.lost, stats.dispatched) == (0, 2, 2)
    for delivery in together:
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.crashes) == ("dispatched", 7, 1)
        assert "shared its batch with others" in delivery.last_error
    assert sorted(len(batch) for batch in queued_delivery_batches(redis, "probe")) == [1, 1]
    # and when one of them loses its worker again, alone, on that last attempt, it is dead
    Delivery.objects.filter(id=together[0].id).update(attempts=8, started_at=timezone.now() - timedelta(seconds=5))
    Delivery.objects.filter(id=together[0].id).update(**_expired())
    dispatch_due(batch_size=100)
    together[0].refresh_from_db()
    assert (together[0].status, together[0].crashes) == ("dead", 2)
    assert "The worker was lost during attempt 8 of 8, the last allowed" in together[0].last_error


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
    token = Delivery.objects.first().dispatch_token
    assert {tuple(args[1:]) for args in queued_task_args(redis, "probe")} == {(token,)}
    assert all(len(b) <= 2 for b in batches)
    ids = [i for b in batches for i in b]
    assert sorted(ids) == sorted(Delivery.objects.values_list("id", flat=True))
    redis.delete("probe")


@pytest.mark.django_db(transaction=True)
def test_an_ordered_event_waits_while_an_earlier_one_of_its_aggregate_is_being_fanned_out_by_another_relay():
    # given two steps of one thing, and another relay holding the first in its open fan-out transaction
    thing = uuid.uuid4()
    first, second = _publish(Stepped(thing_id=thing, seq=1), Stepped(thing_id=thing, seq=2))
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def other_relay() -> None:
        try:
            with transaction.atomic():
                fan_out(batch_size=1)  # claims the first step
                holding.set()
                release.wait(10)
        finally:
            connection.close()
            done.set()

    threading.Thread(target=other_relay).start()
    assert holding.wait(10)
    try:
        # when this relay fans out the second step and dispatches what is due
        assert fan_out(batch_size=1).fanned_out == 1
        dispatch_due(batch_size=100)
        # then the second step is held: the first is not even fanned out yet
        assert Delivery.objects.get(event=second).status == "pending"
    finally:
        release.set()
        assert done.wait(10)
    # and once the first is fanned out, it goes first
    dispatch_due(batch_size=100)
    assert Delivery.objects.get(event=first).status == "dispatched"
    assert Delivery.objects.get(event=second).status == "pending"


def test_retrying_an_unknown_type_dead_letter_once_the_type_is_known_fans_the_event_out(monkeypatch, redis):
    # given an event of a type this deployment did not know, dead-lettered
    row = store_raw_event(type="probe.Later", version=1, payload={"thing_id": str(uuid.uuid4())})
    fan_out(batch_size=100)
    letter = Delivery.objects.get(event=row)
    assert (letter.handler, letter.status) == (UNKNOWN_TYPE_HANDLER, "dead")
    # when a deploy registers the type and a subscriber, and staff retry the letter
    monkeypatch.setitem(registry._classes, "probe.Later", Pinged)
    sub = subscriptions.add(Subscription("probe.Later", record_a, name="probe.record_later"), app_label="probe")
    try:
        dead_letter_retry(deliveries=Delivery.objects.filter(id=letter.id))
        dispatch_due(batch_size=100)
        letter.refresh_from_db()
        assert letter.status == "dispatched"  # sent to the outbox queue, not buried again
        run_deliveries([letter.id], token=letter.dispatch_token)
        # then the event fans out to its handler, which gets it
        letter.refresh_from_db()
        assert letter.status == "done"
        [new] = Delivery.objects.filter(event=row, handler="probe.record_later")
        dispatch_due(batch_size=100)
        new.refresh_from_db()
        run_deliveries([new.id], token=new.dispatch_token)
        assert Effect.objects.filter(handler="a", event_id=row.event_id).count() == 1
    finally:
        subscriptions.remove(sub.name)


def test_a_lease_that_ran_out_unstarted_is_renewed_while_its_queue_has_not_reached_it(redis):
    # given two deliveries sent to one queue one after the other, neither started (say, every worker is down)
    first = _dispatched_delivery(**_expired())
    later = _dispatched_delivery()
    Delivery.objects.filter(id=later.id).update(dispatched_at=first.dispatched_at + timedelta(seconds=1))
    redis.delete("probe")
    # when the first one's lease runs out
    stats = dispatch_due(batch_size=100)
    # then it is not sent again: its message still waits in the queue, behind nothing that moved
    first.refresh_from_db()
    assert (stats.waiting, stats.resent, stats.dispatched) == (1, 0, 0)
    assert (first.redispatches, first.attempts) == (0, 0)
    assert first.due_at > timezone.now()
    assert queued_delivery_batches(redis, "probe") == []


def test_a_lease_that_ran_out_unstarted_after_its_queue_moved_past_it_sends_it_again():
    # given a delivery whose lease ran out, and one sent to the same queue after it that a worker started
    first = _dispatched_delivery(**_expired())
    later = _dispatched_delivery(attempts=1, started_at=timezone.now())
    Delivery.objects.filter(id=later.id).update(dispatched_at=first.dispatched_at + timedelta(seconds=1))
    # when
    stats = dispatch_due(batch_size=100)
    # then its message was lost (the queue went past it): it is sent again
    first.refresh_from_db()
    assert (stats.resent, first.redispatches) == (1, 1)
