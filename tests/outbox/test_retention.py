"""Retention: finished work pruned by age in short batches, one node at a time; events never.

Old work is written with SQL (``generate_series``) so that a test holds thousands of rows, or a
hundred thousand, as a long-running deployment would.
"""

import threading
import time
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from celery import current_app
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import retention
from outbox.models import Delivery, DeliveryFailure, InboxEntry, OutboxEvent
from outbox.retention import PRUNE_LOCK_KEY, finished_work_prune, inbox_window, retry_window
from outbox.subscriptions import Subscription, subscriptions
from tests.outbox.probe.events import Pinged
from tests.support.deliveries import make_delivery
from tests.support.processes import start_beat, wait_for

DAY = 86_400


def finished_work(count: int, *, age_seconds: float, inbox: bool = True) -> None:
    """``count`` relayed events, each with one done delivery (and inbox row) that finished ``age_seconds`` ago."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH events AS (
                INSERT INTO outbox_event (event_id, type, version, occurred_at, aggregate_type, aggregate_id,
                                          correlation_id, traceparent, payload, relayed_at)
                SELECT gen_random_uuid(), 'probe.Pinged', 1, now() - make_interval(secs => %(age)s), 'probe.Thing',
                       g::text, gen_random_uuid(), '', jsonb_build_object('thing_id', gen_random_uuid()), now()
                FROM generate_series(1, %(count)s) g
                RETURNING id, event_id
            ), deliveries AS (
                INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, redispatches,
                                             crashes, last_error, traceback, error_type, error_pattern, created_at,
                                             dispatched_at, started_at, finished_at)
                SELECT id, 'probe.record_a', 'probe', 'done', 1, now(), 0, 0, '', '', '', '',
                       now() - make_interval(secs => %(age)s), now() - make_interval(secs => %(age)s),
                       now() - make_interval(secs => %(age)s), now() - make_interval(secs => %(age)s)
                FROM events
            )
            INSERT INTO outbox_inbox (handler, event_id, handled_at)
            SELECT 'probe.record_a', event_id, now() - make_interval(secs => %(age)s) FROM events WHERE %(inbox)s
            """,
            {"count": count, "age": age_seconds, "inbox": inbox},
        )


def counts() -> tuple[int, int, int]:
    return OutboxEvent.objects.count(), Delivery.objects.count(), InboxEntry.objects.count()


@pytest.mark.django_db
def test_done_deliveries_and_inbox_rows_past_retention_go_in_batches_and_events_stay(settings):
    # given 3,000 events whose work finished 40 days ago, and 20 whose work finished an hour ago
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_DONE_DAYS": 30.0, "REPLAY_HORIZON_DAYS": 30.0}
    finished_work(3000, age_seconds=40 * DAY)
    finished_work(20, age_seconds=3600)
    # when retention runs 500 rows at a time
    report = finished_work_prune(batch_size=500)
    # then the old deliveries and inbox rows are gone, six batches of each; the fresh ones and every event stay
    assert (report.deliveries, report.inbox, report.resolved, report.batches) == (3000, 3000, 0, 12)
    assert (report.skipped, report.complete) == (False, True)
    assert counts() == (3020, 20, 20)
    assert not Delivery.objects.filter(finished_at__lt=timezone.now() - timedelta(days=1)).exists()


@pytest.mark.django_db
def test_a_deadline_stops_the_prune_between_batches_and_the_next_run_goes_on():
    # given 2,000 deliveries and inbox rows past retention
    finished_work(2000, age_seconds=40 * DAY)
    # when a run's deadline has passed before it starts, and then a run with time enough
    late = finished_work_prune(batch_size=500, deadline=time.monotonic() - 1)
    on_time = finished_work_prune(batch_size=500, deadline=time.monotonic() + 60)
    # then the first pruned nothing and said so; the second pruned everything
    assert (late.batches, late.complete) == (0, False)
    assert (on_time.deliveries, on_time.inbox, on_time.complete) == (2000, 2000, True)


@pytest.mark.django_db
def test_events_are_never_deleted_whatever_the_retention():
    # given events whose work finished, some a century ago
    finished_work(50, age_seconds=36_500 * DAY)
    finished_work(50, age_seconds=1)
    # when the command prunes everything finished, at any age
    report = finished_work_prune(older_than=timedelta(0))
    # then every delivery went and every event stayed
    assert report.deliveries == 100
    assert counts()[:2] == (100, 0)


@pytest.fixture
def patient_handler():
    """A subscription that retries for over a week: 20 attempts, up to a day apart."""
    subscription = subscriptions.add(
        Subscription(Pinged, _patient, max_attempts=20, backoff_base=60.0, backoff_cap=DAY), app_label="probe"
    )
    yield subscription
    subscriptions.remove(subscription.name)


def _patient(event, envelope) -> None:
    pass


def test_the_retry_window_is_a_lease_per_attempt_plus_the_backoffs_between(settings):
    # given a lease of 60 s, and a subscription of 4 attempts 2 s apart, doubling, at most 5 s
    settings.OUTBOX = {**settings.OUTBOX, "LEASE_SECONDS": 60.0}
    subscription = Subscription(Pinged, _patient, max_attempts=4, backoff_base=2.0, backoff_cap=5.0)
    # then its window is 4 leases, and 2 + 4 + 5 s between them
    assert retry_window(subscription) == timedelta(seconds=4 * 60 + 11)
    # and a policy of a billion attempts is still counted in a few steps
    huge = Subscription(Pinged, _patient, max_attempts=10**9, backoff_base=1.0, backoff_cap=2.0)
    assert retry_window(huge) == timedelta(seconds=10**9 * 60 + 1 + (10**9 - 2) * 2)


def test_the_inbox_window_is_the_longest_retry_window_plus_the_replay_horizon(settings, patient_handler):
    # given the replay horizon of 7 days, and the patient handler's retry window the longest
    settings.OUTBOX = {**settings.OUTBOX, "REPLAY_HORIZON_DAYS": 7.0}
    longest = retry_window(patient_handler)
    assert longest > timedelta(days=9)
    assert all(retry_window(s) <= longest for s in subscriptions.all())
    # then
    assert inbox_window() == longest + timedelta(days=7)


@pytest.mark.django_db
def test_an_inbox_row_inside_the_inbox_window_stays_whatever_the_retention_says(settings, patient_handler):
    # given done work just inside the inbox window and just outside it, both older than RETENTION_DONE_DAYS
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_DONE_DAYS": 1.0, "REPLAY_HORIZON_DAYS": 2.0}
    window = inbox_window().total_seconds()
    finished_work(3, age_seconds=window - 600)
    finished_work(4, age_seconds=window + 600)
    # when retention runs, even asked to prune everything done
    scheduled, forced = finished_work_prune(), finished_work_prune(older_than=timedelta(0))
    # then every done delivery went, but only the inbox rows outside the window
    assert (scheduled.deliveries + forced.deliveries, scheduled.inbox, forced.inbox) == (7, 4, 0)
    assert InboxEntry.objects.count() == 3


@pytest.mark.django_db
def test_resolved_dead_letters_go_after_their_own_window_and_unresolved_ones_stay(settings):
    # given dead letters resolved 100 and 10 days ago, one nobody resolved from 1,000 days ago, and a done delivery
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_RESOLVED_DAYS": 90.0, "RETENTION_DONE_DAYS": 30.0}
    now = timezone.now()
    long_resolved = make_delivery(status="dead", resolved_at=now - timedelta(days=100))
    lately_resolved = make_delivery(status="dead", resolved_at=now - timedelta(days=10))
    unresolved = make_delivery(status="dead", finished_at=now - timedelta(days=1000))
    done = make_delivery(status="done", finished_at=now - timedelta(days=60))
    # when retention runs
    report = finished_work_prune()
    # then only the letter resolved past its window went (and the done delivery past its own); no event did
    assert (report.resolved, report.deliveries) == (1, 1)
    assert set(Delivery.objects.values_list("id", flat=True)) == {lately_resolved.id, unresolved.id}
    assert OutboxEvent.objects.filter(id__in=[long_resolved.event_id, done.event_id]).count() == 2


@pytest.mark.django_db
def test_the_failed_attempts_of_pruned_deliveries_go_with_them_and_the_others_stay(settings):
    # given a done delivery past retention that failed twice first, a resolved dead letter past its window that
    # failed three times, and a dead letter nobody resolved that failed once
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_RESOLVED_DAYS": 90.0, "RETENTION_DONE_DAYS": 30.0}
    now = timezone.now()
    done = make_delivery(status="done", finished_at=now - timedelta(days=60))
    resolved = make_delivery(status="dead", resolved_at=now - timedelta(days=100))
    unresolved = make_delivery(status="dead")
    for delivery, failed in ((done, 2), (resolved, 3), (unresolved, 1)):
        DeliveryFailure.objects.bulk_create(
            DeliveryFailure(delivery=delivery, attempt=n, cause="handler_error", error="boom", failed_at=now)
            for n in range(1, failed + 1)
        )
    # when retention runs
    with CaptureQueriesContext(connection) as queries:
        report = finished_work_prune()
    # then the pruned deliveries' failures went with them, in their batch; the kept letter's failure stays
    assert (report.deliveries, report.resolved) == (1, 1)
    assert list(DeliveryFailure.objects.values_list("delivery_id", flat=True)) == [unresolved.id]
    # and the database's cascade took them: each batch is still one DELETE, with no ids collected by Django
    assert not [q["sql"] for q in queries if "outbox_delivery_failure" in q["sql"]]


def _advisory_lock_holders() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND (classid::bigint << 32 | objid::bigint) = %s",
            [PRUNE_LOCK_KEY],
        )
        return cursor.fetchone()[0]


def _other_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or "postgres", host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )


@pytest.mark.django_db(transaction=True)
def test_two_prunes_at_once_one_prunes_and_the_other_skips_at_once():
    # given 2,000 deliveries and inbox rows past retention, and the inbox table locked by a third connection
    finished_work(2000, age_seconds=40 * DAY)
    blocker = _other_connection()
    blocker.execute("LOCK TABLE outbox_inbox IN ACCESS EXCLUSIVE MODE")
    first: dict[str, retention.PruneReport] = {}

    def prune_in_a_thread() -> None:
        try:
            first["report"] = finished_work_prune(batch_size=500)
        finally:
            connection.close()

    # when one prune starts (in a thread, on a connection of its own) and stops at the locked table
    thread = threading.Thread(target=prune_in_a_thread)
    thread.start()
    try:
        wait_for(_advisory_lock_holders, timeout=10, what="the first prune to hold the prune lock")
        # and a second prune starts meanwhile
        second = finished_work_prune(batch_size=500)
    finally:
        blocker.rollback()  # lets the first prune go on
        blocker.close()
        thread.join(timeout=30)
    # then the second skipped, at once, and pruned nothing; the first pruned everything
    assert (second.skipped, second.batches) == (True, 0)
    assert (first["report"].deliveries, first["report"].inbox) == (2000, 2000)
    assert counts() == (2000, 0, 0)
    # and the lock went with the first prune: a third prune gets it
    assert _advisory_lock_holders() == 0
    assert finished_work_prune().skipped is False


@pytest.mark.django_db
def test_the_command_says_so_and_exits_1_when_another_node_is_pruning():
    # given old done work, and another session holding the prune lock
    finished_work(10, age_seconds=40 * DAY)
    other = _other_connection()
    other.execute("SELECT pg_advisory_lock(%s)", [PRUNE_LOCK_KEY])
    try:
        # when
        with pytest.raises(CommandError) as refused:
            call_command("outbox_prune", stdout=StringIO())
    finally:
        other.close()
    # then
    assert refused.value.returncode == 1
    assert str(refused.value) == "Another process is pruning now (beat's outbox.prune?); nothing done. Try again later."
    assert counts() == (10, 10, 10)


@pytest.mark.django_db
def test_the_command_prunes_and_reports_its_batches(capsys):
    # given
    finished_work(1200, age_seconds=40 * DAY)
    # when
    call_command("outbox_prune", "--days", "30")
    # then
    out = capsys.readouterr().out
    assert out.startswith("pruned 1200 done deliveries and 1200 inbox rows older than 30 days, and 0 resolved")
    assert "in 2 batches (longest " in out
    assert counts() == (1200, 0, 0)


@pytest.mark.django_db
def test_the_prune_task_refuses_to_run_with_retention_settings_it_cannot_use(settings, caplog):
    # given old done work, and a negative age for resolved dead letters
    finished_work(10, age_seconds=40 * DAY)
    settings.OUTBOX = {**settings.OUTBOX, "RETENTION_RESOLVED_DAYS": -1}
    # when beat's task runs (in this process)
    retention.prune()
    # then it prunes nothing and logs why
    assert counts() == (10, 10, 10)
    assert "outbox.E010: OUTBOX['RETENTION_RESOLVED_DAYS'] is -1" in caplog.text


@pytest.mark.django_db
def test_beats_task_prunes_what_is_due():
    # given old done work
    finished_work(10, age_seconds=40 * DAY)
    # when beat's task runs (in this process)
    retention.prune()
    # then it is pruned
    assert counts() == (10, 0, 0)


def test_the_beat_schedule_runs_the_prune_every_minute_and_the_task_is_registered(settings):
    entries = [entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "outbox.prune"]
    assert len(entries) == 1
    assert entries[0]["schedule"].run_every == timedelta(seconds=60)
    assert "outbox.prune" in current_app.tasks


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_prune_old_work_by_themselves(live_outbox):
    # given old done work, and fresh
    finished_work(300, age_seconds=40 * DAY)
    finished_work(5, age_seconds=60)
    # when beat runs, sending the prune every second, and the session's worker runs it
    beat = start_beat(OUTBOX_PRUNE_EVERY_SECONDS="1")
    try:
        # then the old work goes, with nobody running a command
        wait_for(lambda: counts() == (305, 5, 5), timeout=30, what=lambda: f"{counts()}\n{live_outbox.logs()}")
    finally:
        beat.stop()
    assert "outbox prune: 300 done deliveries, 300 inbox rows" in live_outbox.worker.output()


@pytest.mark.django_db(transaction=True)
def test_batches_over_a_hundred_thousand_rows_each_hold_their_locks_briefly(settings):
    # given 100,000 deliveries and inbox rows past retention, as a deployment that never pruned would have
    finished_work(100_000, age_seconds=40 * DAY)
    # when retention runs with its default batch size
    started = time.perf_counter()
    report = finished_work_prune()
    took = time.perf_counter() - started
    # then each batch committed within the bound docs/operations.md states, and everything due went
    batch = settings.OUTBOX["RETENTION_BATCH_SIZE"]
    print(
        f"\nretention: {report.deliveries} deliveries + {report.inbox} inbox rows in {report.batches} batches of "
        f"{batch} in {took:.1f} s; longest batch {report.longest_batch * 1000:.0f} ms"
    )
    assert (report.deliveries, report.inbox, report.batches) == (100_000, 100_000, 2 * -(-100_000 // batch))
    assert report.longest_batch < retention.BATCH_BOUND_SECONDS
    assert counts() == (100_000, 0, 0)
