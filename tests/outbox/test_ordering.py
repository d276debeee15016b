"""Per-aggregate ordering for a handler that declares it, with several workers."""

import uuid

import pytest
from django.db import transaction

from outbox.models import Delivery
from outbox.publishing import publish
from outbox.relay import kick_relay
from outbox.services import dead_letter_discard
from tests.outbox.probe.events import Stepped
from tests.outbox.probe.models import Effect
from tests.support.processes import start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


@pytest.fixture
def second_worker(live_outbox):
    worker = start_worker(queues="probe", concurrency=4)
    yield worker
    worker.stop()


def test_events_of_one_aggregate_are_handled_in_order_across_many_workers(live_outbox, second_worker):
    # given 15 steps each for three things, published interleaved
    things = [uuid.uuid4() for _ in range(3)]
    with transaction.atomic():
        for seq in range(15):
            for thing in things:
                publish(Stepped(thing_id=thing, seq=seq))
    # when
    wait_for(lambda: Effect.objects.filter(handler="step").count() == 45, timeout=60, what=live_outbox.logs)
    # then each thing's steps were recorded in order
    for thing in things:
        seqs = list(
            Effect.objects.filter(handler="step", aggregate_id=str(thing)).order_by("id").values_list("seq", flat=True)
        )
        assert seqs == list(range(15))


def test_a_dead_event_holds_only_its_own_aggregate(live_outbox):
    # given thing A whose first step fails for good, and thing B
    a, b = uuid.uuid4(), uuid.uuid4()
    with transaction.atomic():
        a_events = [publish(Stepped(thing_id=a, seq=0, fail=True))]
        a_events += [publish(Stepped(thing_id=a, seq=seq)) for seq in (1, 2)]
        for seq in range(3):
            publish(Stepped(thing_id=b, seq=seq))
    # then B flows while A is held behind its dead first step
    wait_for(lambda: Effect.objects.filter(aggregate_id=str(b)).count() == 3, timeout=30, what=live_outbox.logs)
    wait_for(lambda: Delivery.objects.filter(event=a_events[0], status="dead").exists(), timeout=10)
    assert not Effect.objects.filter(aggregate_id=str(a)).exists()
    assert set(Delivery.objects.filter(event__in=a_events[1:]).values_list("status", flat=True)) == {"pending"}
    # when the dead step is discarded, A's next steps flow, in order
    dead_letter_discard(deliveries=Delivery.objects.filter(event=a_events[0]), user=None)
    kick_relay()
    wait_for(lambda: Effect.objects.filter(aggregate_id=str(a)).count() == 2, timeout=30, what=live_outbox.logs)
    assert list(Effect.objects.filter(aggregate_id=str(a)).order_by("id").values_list("seq", flat=True)) == [1, 2]
