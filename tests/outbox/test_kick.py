"""The push path: commits kick the relay, and a burst of commits is coalesced."""

import json
import socket
import uuid

import pytest
import redis as redis_lib
from django.core.cache import cache
from django.db import transaction

from outbox.publishing import publish
from outbox.relay import KICK_KEY
from outbox.tasks import relay
from tests.outbox.probe.events import Pinged
from tests.support.processes import start_beat, wait_for
from tests.support.web import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


def _relay_runs_queued(redis) -> int:
    return sum(1 for raw in redis.lrange("outbox", 0, -1) if b'"outbox.relay"' in raw)


def test_a_burst_of_a_thousand_commits_queues_one_relay_run(no_live_outbox, redis):
    # given no relay consuming its queue
    redis.delete("outbox")
    cache.delete(KICK_KEY)
    # when 1,000 transactions publish
    for _ in range(1000):
        with transaction.atomic():
            publish(Pinged(thing_id=uuid.uuid4()))
    # then the kicks were coalesced: a run is queued, but not 1,000
    assert 1 <= _relay_runs_queued(redis) <= 2
    redis.delete("outbox")


def test_a_transaction_that_publishes_many_events_kicks_once(no_live_outbox, redis):
    redis.delete("outbox")
    cache.delete(KICK_KEY)
    with transaction.atomic():
        for _ in range(50):
            publish(Pinged(thing_id=uuid.uuid4()))
    assert _relay_runs_queued(redis) == 1
    redis.delete("outbox")


def test_a_rolled_back_transaction_kicks_nothing(no_live_outbox, redis):
    redis.delete("outbox")
    cache.delete(KICK_KEY)
    with transaction.atomic():
        publish(Pinged(thing_id=uuid.uuid4()))
        transaction.set_rollback(True)
    assert _relay_runs_queued(redis) == 0


def test_a_relay_run_still_relays_while_the_cache_is_down(no_live_outbox, settings):
    # given an event to relay, and a cache server that does not answer
    with transaction.atomic():
        row = publish(Pinged(thing_id=uuid.uuid4()))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    # when a relay run starts (it clears the kick flag first, in the cache)
    result = relay.apply()
    # then it did not fail on the cache, and relayed the event
    assert result.successful(), result.traceback
    row.refresh_from_db()
    assert row.relayed_at is not None


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
