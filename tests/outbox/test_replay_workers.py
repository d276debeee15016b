"""``outbox_replay`` run as an operator runs it, delivered by real processes: a relay, a worker on the live
queues and a worker on the replay queue (``probe.replay``), on the test's PostgreSQL and Redis."""

import os
import signal
import time
import uuid

import pytest
from django.db import transaction

from outbox.models import Delivery, ReplayProgress
from outbox.publishing import publish
from tests.outbox.probe.events import Pinged
from tests.outbox.probe.models import Effect
from tests.outbox.test_replay import NEW, OLD, TALLY, archived_history, deliveries_of_others, effect_counts
from tests.support.commands import manage
from tests.support.processes import ChildProcess, manage_py, process_env, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

REPLAY_QUEUE = "probe.replay"


def start_replay_worker() -> ChildProcess:
    """A worker on the replay queue only, with the leases of the session's processes."""
    return start_worker(queues=REPLAY_QUEUE, OUTBOX_LEASE_SECONDS=os.environ.get("TEST_OUTBOX_LEASE_SECONDS", "5"))


@pytest.fixture
def replay_worker(live_outbox):
    """A worker of its own on the replay queue, beside the session's relay and live worker."""
    worker = start_replay_worker()
    yield worker
    worker.stop()


def replay_in_the_background(*args: str) -> ChildProcess:
    argv = [*manage_py(), "outbox_replay", *args]
    return ChildProcess("outbox_replay", argv, process_env())


def delivered_once_each(events, handler: str = NEW, effect: str = "archive-new") -> bool:
    """Every event has exactly one effect of the handler and one delivery to it, done."""
    done = Delivery.objects.filter(handler=handler, status="done").count()
    return effect_counts(effect) == {e.event_id: 1 for e in events} and done == len(events)


def test_ten_thousand_past_events_reach_a_new_handler_once_and_a_second_run_delivers_nothing(replay_worker):
    # given 10,000 events handled by probe.archive_old before probe.archive_new was deployed
    events = archived_history(10_000)
    others = deliveries_of_others()
    # when
    started = time.monotonic()
    result = manage("outbox_replay", "--handler", NEW)
    elapsed = time.monotonic() - started
    # then
    assert result.returncode == 0, result.stderr
    print(f"\nreplay of 10,000 events to {NEW}: {elapsed:.2f} s")
    assert f"{NEW}: replayed 10000 events, 10000 deliveries on queue {REPLAY_QUEUE}; 0 of" in result.stdout
    assert delivered_once_each(events)
    assert set(Delivery.objects.filter(handler=NEW).values_list("queue", flat=True)) == {REPLAY_QUEUE}
    assert deliveries_of_others() == others
    # when it runs again
    again = manage("outbox_replay", "--handler", NEW)
    # then it delivered nothing
    assert again.returncode == 0, again.stderr
    assert f"{NEW}: replayed 10000 events, 0 deliveries" in again.stdout
    assert delivered_once_each(events)
    assert Delivery.objects.filter(handler=NEW).count() == 10_000
    assert deliveries_of_others() == others


@pytest.mark.faults
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_a_replay_stopped_half_way_and_run_again_delivers_every_event_once(replay_worker, how):
    # given a replay of 10,000 events under way
    events = archived_history(10_000)
    others = deliveries_of_others()
    replay = replay_in_the_background("--handler", NEW, "--batch-size", "250", "--window", "1000")
    try:
        wait_for(
            lambda: ReplayProgress.objects.filter(handler=NEW, scanned__gte=5_000).exists(),
            timeout=90,
            what=replay.output,
        )
        # when it is stopped half way
        replay.send(how)
        replay.proc.wait(30)
    finally:
        replay.kill()
    # then it stopped before the end, and said how to go on after a Ctrl-C
    progress = ReplayProgress.objects.get(handler=NEW)
    assert progress.finished_at is None
    assert 5_000 <= progress.scanned < 10_000
    if how == signal.SIGINT:
        assert replay.proc.returncode == 130
        assert "Run the same command again to go on from there." in replay.output()
    else:
        assert replay.proc.returncode == -signal.SIGKILL
    # when it is run again
    result = manage("outbox_replay", "--handler", NEW)
    # then it went on where it stopped, and every event was delivered once
    assert result.returncode == 0, result.stderr
    assert f"{NEW}: resuming after event #{progress.cursor}" in result.stdout
    assert delivered_once_each(events)
    assert deliveries_of_others() == others


def test_live_events_are_delivered_while_a_replay_waits_for_its_queue(live_outbox):
    # given a replay whose window is full, and no worker on the replay queue yet
    archived_history(3_000)
    replay = replay_in_the_background("--handler", NEW, "--batch-size", "500", "--window", "1000")
    try:
        wait_for(
            lambda: Delivery.objects.filter(handler=NEW, queue=REPLAY_QUEUE).count() >= 1_000,
            timeout=60,
            what=replay.output,
        )
        # when a live event is published
        with transaction.atomic():
            live = publish(Pinged(thing_id=uuid.uuid4()))
        # then the live worker delivers it at once, while the replay waits for its own queue's worker
        wait_for(lambda: Effect.objects.filter(event_id=live.event_id).count() == 3, timeout=10, what=live_outbox.logs)
        assert Delivery.objects.filter(handler=NEW, queue=REPLAY_QUEUE).count() == 1_000
        assert not Delivery.objects.filter(handler=NEW, status="done").exists()
        # when a worker on the replay queue starts
        worker = start_replay_worker()
        try:
            replay.proc.wait(120)
        finally:
            worker.stop()
    finally:
        replay.kill()
    # then the replay finished
    assert replay.proc.returncode == 0, replay.output()
    assert Delivery.objects.filter(handler=NEW, status="done").count() == 3_000


def test_a_subscriptions_declared_history_is_delivered_once(replay_worker):
    # given probe.archive_new declares history_from="all", and 300 events came before it
    events = archived_history(300)
    others = deliveries_of_others()
    # when the history is delivered, twice
    first = manage("outbox_replay", "--history")
    second = manage("outbox_replay", "--history")
    # then
    assert first.returncode == 0, first.stderr
    assert f"{NEW}: replayed 300 events, 300 deliveries" in first.stdout
    assert second.returncode == 0, second.stderr
    assert second.stdout == f"{NEW}: its history was delivered already (300 deliveries).\n"
    assert delivered_once_each(events)
    assert deliveries_of_others() == others


def test_a_rebuild_makes_the_read_model_match_the_log_again(replay_worker):
    # given a tally that handled 300 events and then drifted: ten effects lost, a stray one
    events = archived_history(300, handled_by=(OLD, TALLY))
    Effect.objects.bulk_create(
        Effect(handler="tally", event_id=e.event_id, aggregate_id=e.aggregate_id) for e in events[10:]
    )
    Effect.objects.create(handler="tally", event_id=uuid.uuid4(), aggregate_id="stray")
    others = deliveries_of_others(TALLY)
    # when
    result = manage("outbox_replay", "--handler", TALLY, "--rebuild")
    # then
    assert result.returncode == 0, result.stderr
    assert delivered_once_each(events, handler=TALLY, effect="tally")
    assert deliveries_of_others(TALLY) == others
