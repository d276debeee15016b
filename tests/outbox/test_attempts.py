"""Attempt accounting, in-process: an attempt is a handler that started, and only that.

The runner commits the start of a batch before its handlers run; copies of
old dispatches start nothing; an attempt found started and abandoned is
recorded as a lost worker; a batch stops at a delivery boundary before its
soft time limit and gives back what it did not run; a dropped database
connection re-runs the same attempt instead of spending another.
"""

import contextlib
import signal
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection, connections, transaction
from django.utils import timezone

from outbox.models import Delivery, DeliveryFailure, InboxEntry
from outbox.publishing import publish
from outbox.relay import dispatch_due, fan_out
from outbox.runner import START_GRACE_SECONDS, run_deliveries
from outbox.subscriptions import Subscription, subscriptions
from tests.outbox.probe.events import Pinged
from tests.outbox.probe.models import Effect, Switch
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscribe():
    """Subscribe a test's own handler to probe.Pinged for the test's duration."""
    added = []

    def add(handler, **options) -> str:
        added.append(subscriptions.add(Subscription(Pinged, handler, **options), app_label="probe").name)
        return added[-1]

    yield add
    for name in added:
        subscriptions.remove(name)


def _dispatched(handler: str, count: int = 1) -> list[Delivery]:
    with transaction.atomic():
        events = [publish(Pinged(thing_id=uuid.uuid4(), seq=n)) for n in range(count)]
    fan_out(batch_size=100)
    return list(Delivery.objects.filter(event__in=events, handler=handler).order_by("id"))


def _committed_row(delivery_id: int) -> tuple:
    """The delivery as another connection sees it: only what has been committed."""
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None
    ) as other:
        return other.execute(
            "SELECT attempts, started_at IS NOT NULL FROM outbox_delivery WHERE id = %s", [delivery_id]
        ).fetchone()


@pytest.mark.django_db(transaction=True)
def test_the_start_of_an_attempt_is_committed_before_the_handler_runs(subscribe, no_live_outbox):
    # given a handler that looks at its own delivery from another connection
    seen = []
    name = subscribe(lambda event, envelope: seen.append((envelope.attempt, _committed_row(delivery_id))))
    [delivery] = _dispatched(name)
    delivery_id = delivery.id
    # when
    run_deliveries([delivery.id], token=delivery.dispatch_token)
    # then the handler ran once, on attempt 1, whose start was already committed
    assert seen == [(1, (1, True))]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("done", 1)


def test_a_copy_of_an_older_dispatch_is_dropped_without_running_or_spending_anything():
    # given a delivery sent again (its lease ran out before any handler started it)
    [delivery] = _dispatched("probe.record_a")
    old_token = delivery.dispatch_token
    Delivery.objects.filter(id=delivery.id).update(due_at=timezone.now() - timedelta(seconds=1))
    dispatch_due(batch_size=10)
    # when the first, stale copy reaches a runner
    report = run_deliveries([delivery.id], token=old_token)
    # then
    delivery.refresh_from_db()
    assert report.skipped == [delivery.id]
    assert (delivery.status, delivery.attempts) == ("dispatched", 0)
    assert not Effect.objects.exists()
    # and the current copy runs it
    run_deliveries([delivery.id], token=delivery.dispatch_token)
    assert Effect.objects.filter(handler="a").count() == 1


def test_an_abandoned_attempt_is_recorded_as_a_lost_worker_and_the_delivery_goes_on_alone():
    # given a delivery whose attempt 1 started long enough ago and never finished
    [delivery] = _dispatched("probe.record_a")
    Delivery.objects.filter(id=delivery.id).update(attempts=1, started_at=timezone.now() - timedelta(seconds=10))
    # when its task comes round again (the broker redelivered it after the worker died)
    report = run_deliveries([delivery.id], token=delivery.dispatch_token)
    # then the lost attempt is recorded, with backoff, and nothing ran
    delivery.refresh_from_db()
    assert report.failed == [delivery.id]
    assert (delivery.status, delivery.attempts, delivery.crashes, delivery.started_at) == ("pending", 1, 1, None)
    assert "The worker running attempt 1 of 8 was lost" in delivery.last_error
    assert delivery.due_at > timezone.now()
    [failure] = delivery.failures.all()
    assert (failure.attempt, failure.cause, failure.error_type) == (1, "worker_lost", "outbox.WorkerLost")
    assert "The worker running attempt 1 of 8 was lost" in failure.error
    assert not Effect.objects.exists()


def test_an_abandoned_last_attempt_of_a_shared_batch_is_not_charged_but_one_run_alone_is_dead():
    # given a batch of two started together on their last attempt, and a delivery that ran its last alone,
    # all abandoned (their worker died: the broker gave the messages back)
    batch = _dispatched("probe.record_a", count=2)
    [alone] = _dispatched("probe.record_b")
    together = timezone.now() - timedelta(seconds=10)
    Delivery.objects.filter(id__in=[d.id for d in batch]).update(attempts=8, started_at=together)
    Delivery.objects.filter(id=alone.id).update(attempts=8, started_at=together - timedelta(seconds=1))
    # when their tasks come round again
    shared = run_deliveries([d.id for d in batch], token=batch[0].dispatch_token)
    own = run_deliveries([alone.id], token=alone.dispatch_token)
    # then the shared batch's lost attempt is not charged: each has its last attempt again (alone, crashes 1)
    assert sorted(shared.failed) == sorted(d.id for d in batch)
    for delivery in Delivery.objects.filter(id__in=[d.id for d in batch]):
        assert (delivery.status, delivery.attempts, delivery.crashes) == ("pending", 7, 1)
        assert "shared its batch with others" in delivery.last_error
        assert list(delivery.failures.values_list("attempt", "cause", "counted")) == [(8, "worker_lost", False)]
    # and the one that ran alone is dead: the crash was its own
    alone.refresh_from_db()
    assert own.dead == [alone.id]
    assert (alone.status, alone.attempts, alone.crashes) == ("dead", 8, 1)
    assert list(alone.failures.values_list("attempt", "cause", "counted")) == [(8, "worker_lost", True)]
    assert not Effect.objects.exists()


def test_an_attempt_started_a_moment_ago_is_left_to_the_runner_that_started_it():
    [delivery] = _dispatched("probe.record_a")
    Delivery.objects.filter(id=delivery.id).update(attempts=1, started_at=timezone.now())
    report = run_deliveries([delivery.id], token=delivery.dispatch_token)
    delivery.refresh_from_db()
    assert report.busy == [delivery.id]
    assert (delivery.status, delivery.attempts, delivery.crashes) == ("dispatched", 1, 0)
    assert START_GRACE_SECONDS > 0


def test_a_batch_past_its_deadline_hands_back_what_it_did_not_start_unspent(subscribe):
    # given a batch of three deliveries of a handler that takes 500 ms
    name = subscribe(lambda event, envelope: time.sleep(0.5))
    deliveries = _dispatched(name, count=3)
    # when the batch must stop 250 ms in (time enough to start the first, on a busy machine too)
    report = run_deliveries([d.id for d in deliveries], deadline=time.monotonic() + 0.25)
    # then the first ran, the others are back to pending with no attempt spent
    rows = {d.id: d for d in Delivery.objects.filter(handler=name)}
    first, *rest = deliveries
    assert (report.done, sorted(report.handed_back)) == ([first.id], sorted(d.id for d in rest))
    assert (rows[first.id].status, rows[first.id].attempts) == ("done", 1)
    assert {(rows[d.id].status, rows[d.id].attempts, rows[d.id].started_at) for d in rest} == {("pending", 0, None)}
    assert {rows[d.id].finished_at for d in rest} == {None}
    # and only the first has its inbox row (the others were never handled)
    assert list(InboxEntry.objects.filter(handler=name).values_list("event_id", flat=True)) == [first.event.event_id]


def test_a_handler_interrupted_by_the_soft_time_limit_fails_and_the_rest_of_its_batch_goes_back_unspent(subscribe):
    # given a batch of three, whose second handler run is interrupted by the soft time limit
    runs = []

    def handler(event, envelope):
        runs.append(envelope.event_id)
        if len(runs) == 2:
            raise SoftTimeLimitExceeded()
        Effect.objects.create(handler="timed", event_id=envelope.event_id, aggregate_id="x")

    name = subscribe(handler)
    first, second, third = _dispatched(name, count=3)
    # when
    report = run_deliveries([first.id, second.id, third.id])
    # then the batch (run without savepoints) rolled back: the interrupted one failed, the first, which finished
    # but did not commit, and the third, which never started, went back unspent
    assert (report.done, report.failed, sorted(report.handed_back)) == ([], [second.id], sorted([first.id, third.id]))
    assert not Effect.objects.filter(handler="timed").exists()
    for delivery in (first, second, third):
        delivery.refresh_from_db()
    assert (second.status, second.attempts) == ("pending", 1)
    assert "soft time limit" in second.last_error
    assert {(d.status, d.attempts, d.started_at) for d in (first, third)} == {("pending", 0, None)}
    # and only the interrupted attempt is on record as failed, of the time limit
    assert list(DeliveryFailure.objects.values_list("delivery_id", "attempt", "cause")) == [
        (second.id, 1, "time_limit")
    ]


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_dropped_mid_run_reruns_the_same_attempt(subscribe, no_live_outbox):
    # given a handler whose first run has the database drop the worker's connection
    runs = []

    def handler(event, envelope):
        runs.append(envelope.attempt)
        Effect.objects.create(handler="dropped", event_id=envelope.event_id, aggregate_id="x")
        if len(runs) == 1:
            _terminate(connection.cursor().connection.info.backend_pid)
            Effect.objects.count()  # the next statement finds the connection gone

    name = subscribe(handler)
    [delivery] = _dispatched(name)
    # when
    report = run_deliveries([delivery.id], token=delivery.dispatch_token)
    # then the same attempt ran again on a new connection, and its effect is there once
    delivery.refresh_from_db()
    assert report.done == [delivery.id]
    assert runs == [1, 1]
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("done", 1, "")
    assert Effect.objects.filter(handler="dropped").count() == 1


def _terminate(pid: int) -> None:
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    ) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.mark.django_db(transaction=True)
def test_a_handler_interrupted_while_the_database_makes_it_wait_gives_its_batch_back_unspent(subscribe, no_live_outbox):
    # given a batch of three whose second handler waits on a row another connection holds locked
    Switch.objects.create(name="contended")
    runs = []

    def handler(event, envelope):
        runs.append(envelope.event_id)
        Effect.objects.create(handler="contended", event_id=envelope.event_id, aggregate_id="x")
        if len(runs) == 2:
            Switch.objects.select_for_update().get(name="contended")  # blocks until interrupted

    name = subscribe(handler)
    deliveries = _dispatched(name, count=3)
    # when the soft time limit interrupts it in the middle of that query
    with _row_locked_elsewhere("contended"), _soft_time_limit_in(0.5):
        report = run_deliveries([d.id for d in deliveries], token=deliveries[0].dispatch_token)
    # then the interrupted one failed, and the batch, rolled back, went back whole with no attempt spent
    rows = {d.id: d for d in Delivery.objects.filter(handler=name)}
    interrupted = next(d for d in rows.values() if d.attempts == 1)
    assert (report.failed, sorted(report.handed_back)) == ([interrupted.id], sorted(set(rows) - {interrupted.id}))
    assert "soft time limit" in interrupted.last_error
    assert {(d.status, d.attempts) for i, d in rows.items() if i != interrupted.id} == {("pending", 0)}
    assert not Effect.objects.filter(handler="contended").exists()


@pytest.mark.django_db(transaction=True, databases=["default", "side"])
def test_a_handler_interrupted_mid_query_on_another_database_leaves_the_worker_that_database_usable(
    subscribe, no_live_outbox
):
    # given a handler that queries a second database, whose first run the soft time limit interrupts there
    runs = []

    def handler(event, envelope):
        runs.append(envelope.event_id)
        with connections["side"].cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s), 'side-query'", [60 if len(runs) == 1 else 0])

    name = subscribe(handler)
    [first] = _dispatched(name)
    with _soft_time_limit_in(0.5):
        report = run_deliveries([first.id], token=first.dispatch_token)
    assert report.failed == [first.id]
    # when the same worker runs the handler again
    [second] = _dispatched(name)
    report = run_deliveries([second.id], token=second.dispatch_token)
    # then it finds that database usable (not "another command is already in progress")
    second.refresh_from_db()
    assert (report.done, second.last_error) == ([second.id], "")
    # and the server stopped the interrupted query, rather than running it on for a minute
    wait_for(lambda: not _running_queries_like("%side-query%"), timeout=5, what="the interrupted query to stop")


def _running_queries_like(pattern: str) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
            [pattern],
        )
        return [pid for (pid,) in cursor.fetchall()]


@contextlib.contextmanager
def _row_locked_elsewhere(switch: str):
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None
    ) as other:
        other.execute("SELECT 1 FROM probe_switch WHERE name = %s FOR UPDATE", [switch])
        yield
        other.rollback()


@contextlib.contextmanager
def _soft_time_limit_in(seconds: float):
    """Raise SoftTimeLimitExceeded in this thread after ``seconds``, as Celery's pool does in a worker."""

    def interrupt(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_runner_takes_along_deliveries_that_have_waited_in_its_queue_and_their_messages_find_them_done():
    # given three deliveries of one queue that have waited a while, as in a backlog, and a fresh one
    waited = _dispatched("probe.record_a", count=3)
    Delivery.objects.filter(id__in=[d.id for d in waited]).update(dispatched_at=timezone.now() - timedelta(seconds=5))
    [fresh] = _dispatched("probe.record_b")
    # when the first one's task runs
    report = run_deliveries([waited[0].id], token=waited[0].dispatch_token)
    # then it took the others that waited along (each started, attempt 1), not the fresh one
    assert set(report.done) >= {d.id for d in waited}
    assert fresh.id not in report.done
    assert set(Delivery.objects.filter(id__in=[d.id for d in waited]).values_list("status", "attempts")) == {
        ("done", 1)
    }
    # and the others' own messages, when they come up, run nothing
    for delivery in waited[1:]:
        assert run_deliveries([delivery.id], token=delivery.dispatch_token).skipped == [delivery.id]
    assert Effect.objects.filter(handler="a").count() == 3


def test_a_delivery_that_crashed_a_worker_takes_nothing_along():
    waited = _dispatched("probe.record_a", count=2)
    Delivery.objects.filter(id__in=[d.id for d in waited]).update(dispatched_at=timezone.now() - timedelta(seconds=5))
    Delivery.objects.filter(id=waited[0].id).update(crashes=1)
    report = run_deliveries([waited[0].id], token=waited[0].dispatch_token)
    assert report.done == [waited[0].id]
    assert Delivery.objects.get(id=waited[1].id).status == "dispatched"
