"""Fault injection: a broker that forgets, a worker killed mid-handler, late commits, racing relays.

Each test runs its own relay and worker processes, so that it can kill them.
"""

import itertools
import random
import threading
import uuid

import pytest
from django.db import connection, transaction
from django.db.models import Count

from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from tests.outbox.probe.events import Flaked, Pinged, Slept
from tests.outbox.probe.models import Effect
from tests.support.broker import queued_delivery_batches
from tests.support.events import outbox_row
from tests.support.processes import start_relay, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers, pytest.mark.faults]


@pytest.fixture
def processes(no_live_outbox):
    started = []
    yield started
    for process in started:
        process.stop()


def test_deliveries_lost_by_a_flushed_redis_are_all_handled_once_after_their_lease(processes, redis):
    # given a relay (3 s lease) and no worker: 100 deliveries dispatched into Redis, none done
    processes.append(start_relay(OUTBOX_LEASE_SECONDS="3"))
    with transaction.atomic():
        events = [publish(Flaked(thing_id=uuid.uuid4())) for _ in range(100)]
    wait_for(lambda: _queued_ids(redis) >= 100, timeout=20, what="100 deliveries sent to Redis")
    assert Delivery.objects.filter(status="dispatched").count() == 100
    # when Redis loses everything, and only then a worker arrives
    redis.flushall()
    processes.append(start_worker(queues="probe", OUTBOX_LEASE_SECONDS="3"))
    # then every delivery is handled, each exactly once
    wait_for(lambda: Delivery.objects.filter(status="done").count() == 100, timeout=60, what="all 100 done")
    per_event = Effect.objects.filter(handler="flaky").values("event_id").annotate(n=Count("id"))
    assert sorted(row["n"] for row in per_event) == [1] * 100
    assert {row["event_id"] for row in per_event} == {e.event_id for e in events}
    assert min(Delivery.objects.values_list("attempts", flat=True)) >= 2  # each was dispatched again


def test_a_worker_killed_inside_a_handler_leaves_the_delivery_to_another_worker(processes, redis):
    # given a worker running a handler that sleeps on its first start
    processes.append(start_relay(OUTBOX_LEASE_SECONDS="2"))
    doomed = start_worker(queues="probe", concurrency=1, OUTBOX_LEASE_SECONDS="2")
    processes.append(doomed)
    with transaction.atomic():
        event = publish(Slept(thing_id=uuid.uuid4(), seconds=60))
    starts = f"probe:slow:{event.event_id}"
    wait_for(lambda: redis.llen(starts) == 1, timeout=20, what="the handler to start")
    # when the whole worker is killed with SIGKILL mid-handler
    doomed.kill()
    assert Delivery.objects.get(event=event).status == "dispatched"
    processes.append(start_worker(queues="probe", OUTBOX_LEASE_SECONDS="2"))
    # then another worker completes it, and its effects happened once
    wait_for(lambda: Delivery.objects.get(event=event).status == "done", timeout=30, what="the delivery to be done")
    assert redis.llen(starts) == 2  # started twice: killed once, completed once
    assert Effect.objects.filter(handler="slow", event_id=event.event_id).count() == 1
    assert Delivery.objects.get(event=event).attempts == 2


def test_events_committed_out_of_id_order_are_all_delivered_once(processes):
    # given a relay and a worker, and 8 writers whose commits lag behind their inserts
    processes.append(start_relay())
    processes.append(start_worker(queues="probe"))
    published: list[uuid.UUID] = []
    lock = threading.Lock()

    def writer(count: int) -> None:
        rng = random.Random()
        try:
            for _ in range(count):
                with transaction.atomic():
                    row = publish(Pinged(thing_id=uuid.uuid4()))
                    # hold the id taken early while later ids commit before this one
                    threading.Event().wait(rng.uniform(0, 0.05))
                with lock:
                    published.append(row.event_id)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=writer, args=(25,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then the commits really were out of id order, and every event reached all three handlers once
    assert _committed_out_of_order()
    wait_for(lambda: Effect.objects.count() >= 600, timeout=60, what="600 effects")
    counts = Effect.objects.values("handler", "event_id").annotate(n=Count("id"))
    assert len(counts) == 600
    assert {row["n"] for row in counts} == {1}
    assert {row["event_id"] for row in counts} == set(published)


def _committed_out_of_order() -> bool:
    """Some event with a higher id was relayed before one with a lower id was even committed."""
    rows = list(OutboxEvent.objects.order_by("id").values_list("id", "relayed_at"))
    return any(later[1] < earlier[1] for earlier, later in itertools.pairwise(rows))


def test_two_relays_over_ten_thousand_events_dispatch_each_delivery_exactly_once(processes, redis):
    # given two relays racing, and no worker, so every dispatched task stays in Redis to be counted
    processes.append(start_relay(OUTBOX_LEASE_SECONDS="600"))
    processes.append(start_relay(OUTBOX_LEASE_SECONDS="600"))
    redis.delete("probe")
    # when 10,000 events are written in 20 transactions
    for _ in range(20):
        with transaction.atomic():
            OutboxEvent.objects.bulk_create([outbox_row(Flaked(thing_id=uuid.uuid4())) for _ in range(500)])
    # then
    wait_for(lambda: Delivery.objects.filter(status="dispatched").count() == 10_000, timeout=120, what="10,000")
    wait_for(lambda: _queued_ids(redis) >= 10_000, timeout=30, what="all tasks to be sent")
    ids = [i for batch in queued_delivery_batches(redis, "probe") for i in batch]
    assert len(ids) == 10_000
    assert len(set(ids)) == 10_000
    assert set(ids) == set(Delivery.objects.values_list("id", flat=True))
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    assert not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
    redis.delete("probe")


def _queued_ids(redis) -> int:
    return sum(len(batch) for batch in queued_delivery_batches(redis, "probe"))


def test_relay_and_worker_recover_when_the_database_drops_their_connections(processes):
    # given a relay and a worker that have been working
    processes.append(start_relay(OUTBOX_LEASE_SECONDS="2"))
    processes.append(start_worker(queues="probe", OUTBOX_LEASE_SECONDS="2"))
    with transaction.atomic():
        first = publish(Pinged(thing_id=uuid.uuid4()))
    wait_for(lambda: Effect.objects.filter(event_id=first.event_id).count() == 3, timeout=20, what="warm-up")
    # when the database terminates every other connection (a failover, a restart)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with transaction.atomic():
        events = [publish(Pinged(thing_id=uuid.uuid4())) for _ in range(5)]
    # then the next events are still delivered, each once
    ids = {e.event_id for e in events}
    wait_for(lambda: Effect.objects.filter(event_id__in=ids).count() == 15, timeout=60, what=processes[0].output)
    assert Effect.objects.filter(event_id__in=ids).values("handler", "event_id").distinct().count() == 15
