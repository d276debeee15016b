"""The push path: commits kick the relay, and a burst of commits is coalesced.

The coalescing flag is a row in the database (outbox/wakeup.py): these tests
hold whatever cache the deployment has.
"""

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis as redis_lib
from django.db import transaction
from django.utils import timezone

from outbox import dispatch, wakeup
from outbox.models import RelayWakeup
from outbox.publishing import publish
from outbox.tasks import relay
from tests.outbox.probe.events import Hopped
from tests.support.processes import start_beat, wait_for
from tests.support.web import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)

PER_PROCESS_CACHES = [
    {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}},
]


@pytest.fixture
def outbox_queue(no_live_outbox, redis):
    """The broker's ``outbox`` queue, empty, with no relay consuming it, and the kick flag clear."""
    redis.delete("outbox")
    dispatch.clear_kick()
    yield redis
    redis.delete("outbox")


def _relay_runs_queued(redis) -> int:
    return sum(1 for raw in redis.lrange("outbox", 0, -1) if b'"outbox.relay"' in raw)


def _an_event(seq: int = 0) -> Hopped:
    """An event of an ordered handler: its delivery waits for a relay pass, so its commit kicks the relay."""
    return Hopped(thing_id=uuid.uuid4(), seq=seq)


def _commit_an_event() -> None:
    with transaction.atomic():
        publish(_an_event())


@pytest.mark.parametrize("caches", [None, *PER_PROCESS_CACHES], ids=["test-cache", "locmem", "dummy"])
def test_a_burst_of_a_thousand_commits_queues_one_relay_run(outbox_queue, settings, caches):
    # given no relay consuming its queue, and whatever cache
    if caches:
        settings.CACHES = caches
    # when 1,000 transactions publish
    started = time.monotonic()
    for _ in range(1000):
        _commit_an_event()
    unstarted_for = time.monotonic() - started
    # then the kicks were coalesced: one run, and one more each time the unstarted one's flag went stale
    assert 1 <= _relay_runs_queued(outbox_queue) <= 1 + unstarted_for // wakeup.STALE_SECONDS


def test_a_transaction_that_publishes_many_events_kicks_once(outbox_queue):
    with transaction.atomic():
        for seq in range(50):
            publish(_an_event(seq))
    assert _relay_runs_queued(outbox_queue) == 1


def test_a_rolled_back_transaction_kicks_nothing(outbox_queue):
    with transaction.atomic():
        publish(_an_event())
        transaction.set_rollback(True)
    assert _relay_runs_queued(outbox_queue) == 0
    assert not RelayWakeup.objects.exclude(queued_at=None).exists()


@pytest.mark.parametrize("caches", PER_PROCESS_CACHES, ids=["locmem", "dummy"])
def test_a_commit_after_the_relay_run_started_queues_a_new_run(outbox_queue, settings, caches):
    # given a per-process cache, a commit that queued a relay run, and that run started (here, in this process)
    settings.CACHES = caches
    _commit_an_event()
    assert _relay_runs_queued(outbox_queue) == 1
    assert relay.apply().successful()
    # when another transaction publishes
    _commit_an_event()
    # then it queued a run of its own: the started run cleared the flag
    assert _relay_runs_queued(outbox_queue) == 2


def test_the_relay_run_clears_the_flag_before_it_claims(outbox_queue, monkeypatch):
    # given a queued run
    _commit_an_event()
    assert _flag() is not None
    seen = []
    monkeypatch.setattr("outbox.relay.relay_pass", lambda **kwargs: seen.append(_flag()))
    # when it starts
    relay.apply()
    # then its pass began with the flag already clear, so a commit during the pass kicks again
    assert seen == [None]


def test_a_stale_flag_expires_and_the_next_commit_kicks(outbox_queue):
    # given a flag set long ago by a run the broker lost
    RelayWakeup.objects.create(queued_at=timezone.now() - timedelta(seconds=wakeup.STALE_SECONDS + 1))
    # when a transaction publishes
    _commit_an_event()
    # then a run is queued, and the flag is fresh again
    assert _relay_runs_queued(outbox_queue) == 1
    assert _flag() > timezone.now() - timedelta(seconds=wakeup.STALE_SECONDS)


def test_a_fresh_flag_holds_the_kick(outbox_queue):
    # given a run queued a moment ago and not started
    RelayWakeup.objects.create(queued_at=timezone.now() - timedelta(seconds=1))
    # when a transaction publishes
    _commit_an_event()
    # then no second run is queued
    assert _relay_runs_queued(outbox_queue) == 0


def test_a_failed_send_clears_the_flag_and_leaves_the_commit_alone(outbox_queue, monkeypatch, caplog):
    # given a broker that refuses the relay task
    monkeypatch.setattr(relay, "apply_async", lambda *a, **kw: (_ for _ in ()).throw(ConnectionError("down")))
    # when a transaction publishes
    _commit_an_event()
    # then the commit stands, the failure is logged, and the next commit may kick again
    assert "relay kick failed" in caplog.text
    assert _flag() is None
    monkeypatch.undo()
    _commit_an_event()
    assert _relay_runs_queued(outbox_queue) == 1


def _flag():
    return RelayWakeup.objects.values_list("queued_at", flat=True).first()


def test_beat_sends_the_relay_sweep_without_an_expiry_no_clock_skew_can_revoke(no_live_outbox):
    # given beat on a broker of its own, and no worker consuming
    broker = RedisServer().start()
    beat = start_beat(broker_url=broker.url)
    try:
        client = redis_lib.Redis.from_url(broker.url)
        # when it has sent a few sweeps
        wait_for(lambda: client.llen("outbox") >= 2, timeout=30, what=beat.output)
        # then none carries an expiry: a worker whose clock or queue runs behind still runs it
        sweeps = [json.loads(raw) for raw in client.lrange("outbox", 0, -1)]
        assert {m["headers"]["task"] for m in sweeps} == {"outbox.relay"}
        assert [m["headers"]["expires"] for m in sweeps] == [None] * len(sweeps)
    finally:
        beat.stop()
        broker.stop()
