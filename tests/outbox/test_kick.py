"""The push path: commits kick the relay, and a burst of commits is coalesced."""

import uuid

import pytest
from django.core.cache import cache
from django.db import transaction

from outbox.publishing import publish
from outbox.relay import KICK_KEY
from tests.outbox.probe.events import Pinged

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
