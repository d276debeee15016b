"""Fault injection: a broker that forgets, workers killed or gone for many leases, poison
deliveries that kill their worker, time limits, late commits, racing relays, dropped connections.

Each test runs its own relay and worker processes, so that it can kill them;
a test that stops the broker runs a redis-server of its own.
"""

import itertools
import random
import threading
import uuid
from collections import Counter

import pytest
import redis as redis_lib
from django.db import connection, transaction
from django.db.models import Count

from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from tests.outbox.probe.events import Crashed, Flaked, Pinged, Slept
from tests.outbox.probe.models import Effect
from tests.support.broker import queued_delivery_batches
from tests.support.commands import publish_in_a_process
from tests.support.events import outbox_row
from tests.support.processes import start_relay, start_worker, wait_for
from tests.support.web import RedisServer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.workers,
    pytest.mark.faults,
    pytest.mark.usefixtures("relay_fans_out"),  # the relay under test sends, through its broker, with its lease
]


@pytest.fixture
def processes(no_live_outbox):
    started = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def broker():
    """A redis-server of the test's own, to stop and restart empty."""
    server = RedisServer().start()
    yield server
    server.stop()


def _client(server: RedisServer) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(server.url)


def _lease(seconds: float) -> dict[str, str]:
    """Worker and relay settings for a lease of ``seconds``, keeping soft < hard < lease."""
    return {
        "OUTBOX_LEASE_SECONDS": str(seconds),
        "CELERY_TASK_TIME_LIMIT": str(0.8 * seconds),
        "CELERY_TASK_SOFT_TIME_LIMIT": str(0.6 * seconds),
    }


@pytest.mark.parametrize("sent_by", ["the relay", "the publisher at commit"])
def test_a_broker_restarted_empty_loses_no_delivery_and_spends_no_attempt(processes, broker, sent_by):
    # given a relay (3 s lease) and no worker: 100 deliveries sent into the broker, by the relay's fan-out or by
    # the publishing process as it commits, none started
    env = {"TEST_BROKER_URL": broker.url, **_lease(3)}
    processes.append(start_relay(**env))
    if sent_by == "the relay":
        with transaction.atomic():
            [publish(Flaked(thing_id=uuid.uuid4())) for _ in range(100)]
    else:
        publish_in_a_process("Flaked(thing_id=uuid.uuid4())", count=100, **env)
        assert not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()  # no relay fanned them out
    wait_for(lambda: _queued_ids(_client(broker)) >= 100, timeout=20, what="100 deliveries sent to the broker")
    assert Delivery.objects.filter(status="dispatched", redispatches=0).count() == 100
    # when the broker restarts with nothing kept, and only then a worker arrives
    broker.shutdown()
    broker.start()
    processes.append(start_worker(queues="probe", **env))
    # then every delivery is handled exactly once, on its first attempt, after the relay sent it again
    wait_for(lambda: Delivery.objects.filter(status="done").count() == 100, timeout=60, what=processes[0].output)
    per_event = Effect.objects.filter(handler="flaky").values("event_id").annotate(n=Count("id"))
    assert sorted(row["n"] for row in per_event) == [1] * 100
    assert {row["event_id"] for row in per_event} == set(OutboxEvent.objects.values_list("event_id", flat=True))
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    assert min(Delivery.objects.values_list("redispatches", flat=True)) >= 1


def test_every_worker_down_for_ten_leases_spends_no_attempt_buries_nothing_and_piles_up_no_copies(processes, broker):
    # given a relay with a 1 s lease and no worker at all, and deliveries sent in two rounds
    env = {"TEST_BROKER_URL": broker.url, **_lease(1)}
    processes.append(start_relay(**env))
    with transaction.atomic():
        early = [publish(Flaked(thing_id=uuid.uuid4())) for _ in range(20)]
    wait_for(lambda: _queued_ids(_client(broker)) >= 20, timeout=20, what="the first round sent")
    with transaction.atomic():
        late = [publish(Flaked(thing_id=uuid.uuid4())) for _ in range(10)]
    # when more than ten leases pass
    wait_for(
        lambda: Delivery.objects.filter(event__in=late, redispatches__gte=4).count() == 10,  # 1 + 2 + 4 + 8 = 15 leases
        timeout=40,
        what="the last round to be re-sent four times",
    )
    # then no attempt was spent and nothing is dead; the first round, behind which the queue never moved,
    # has its one message each, and the last (nothing sent after it) a handful of copies, not one per lease
    assert set(Delivery.objects.values_list("attempts", "status")) == {(0, "dispatched")}
    copies = Counter(i for batch in queued_delivery_batches(_client(broker), "probe") for i in batch)
    first_round = Delivery.objects.filter(event__in=early)
    assert {copies[d.id] for d in first_round} == {1}
    assert set(first_round.values_list("redispatches", flat=True)) == {0}
    assert all(copies[d.id] <= d.redispatches + 1 <= 5 for d in Delivery.objects.filter(event__in=late))
    # and when a worker comes back, each is handled once, on its first attempt; stale copies run nothing
    processes.append(start_worker(queues="probe", **env))
    wait_for(lambda: Delivery.objects.filter(status="done").count() == 30, timeout=30, what=processes[-1].output)
    wait_for(lambda: not queued_delivery_batches(_client(broker), "probe"), timeout=30, what="every copy consumed")
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}
    assert sorted(Effect.objects.filter(handler="flaky").values_list("event_id", flat=True)) == sorted(
        e.event_id for e in early + late
    )


def test_a_worker_killed_inside_a_handler_leaves_the_delivery_to_another_worker(processes, redis):
    # given a worker running a handler that sleeps on its first start
    env = _lease(10)
    processes.append(start_relay(**env))
    doomed = start_worker(queues="probe", concurrency=1, **env)
    processes.append(doomed)
    with transaction.atomic():
        event = publish(Slept(thing_id=uuid.uuid4(), seconds=60))
    starts = f"probe:slow:{event.event_id}"
    wait_for(lambda: redis.llen(starts) == 1, timeout=20, what="the handler to start")
    # when the whole worker is killed with SIGKILL mid-handler
    doomed.kill()
    assert Delivery.objects.get(event=event).status == "dispatched"
    processes.append(start_worker(queues="probe", **env))
    # then, once its lease runs out, another worker completes it, and its effects happened once
    wait_for(lambda: Delivery.objects.get(event=event).status == "done", timeout=40, what="the delivery to be done")
    assert redis.llen(starts) == 2  # started twice: killed once, completed once
    assert Effect.objects.filter(handler="slow", event_id=event.event_id).count() == 1
    delivery = Delivery.objects.get(event=event)
    assert (delivery.attempts, delivery.crashes) == (2, 1)  # the lost attempt counts, and is on record
    assert "was lost before it finished" in delivery.last_error
    # the relay found the loss when the lease ran out, and recorded it as the first attempt's failure
    assert list(delivery.failures.values_list("attempt", "cause", "counted")) == [(1, "worker_lost", True)]


def test_a_delivery_that_kills_its_worker_goes_dead_alone_and_its_batch_siblings_finish_once(processes):
    # given one batch of eight deliveries of a handler, two of which kill the worker process running them
    env = _lease(3)
    processes.append(start_relay(**env))
    processes.append(start_worker(queues="probe", concurrency=1, **env))
    hows = ["", "", "sigkill", "", "", "exit", "", ""]
    with transaction.atomic():
        events = [publish(Crashed(thing_id=uuid.uuid4(), how=how)) for how in hows]
    # when
    wait_for(
        lambda: Delivery.objects.filter(event__in=events, status__in=["done", "dead"]).count() == len(events),
        timeout=90,
        what=processes[-1].output,
    )
    # then the six good ones were handled exactly once, and only the two poisons are dead
    deliveries = {d.event_id: d for d in Delivery.objects.filter(event__in=events)}
    good = [e for e, how in zip(events, hows, strict=True) if not how]
    poison = [e for e, how in zip(events, hows, strict=True) if how]
    assert {deliveries[e.id].status for e in good} == {"done"}
    assert sorted(Effect.objects.filter(handler="crash").values_list("event_id", flat=True)) == sorted(
        e.event_id for e in good
    )
    assert all(deliveries[e.id].attempts <= 2 for e in good)  # at most the batch that died, then alone
    for event in poison:
        delivery = deliveries[event.id]
        assert (delivery.status, delivery.attempts, delivery.crashes) == ("dead", 3, 3)
        assert "The worker was lost during attempt 3 of 3, the last allowed" in delivery.last_error
        # each lost attempt is on record, whether a runner or the relay found it
        assert sorted(delivery.failures.values_list("attempt", "cause")) == [(n, "worker_lost") for n in (1, 2, 3)]


def test_the_soft_time_limit_stops_a_batch_between_deliveries_and_spends_no_attempt_on_the_rest(processes):
    # given a worker whose tasks have a soft time limit of 1.2 s, and 20 deliveries of a 0.1 s handler
    env = _lease(2)
    processes.append(start_relay(**env))
    worker = start_worker(queues="probe", concurrency=1, **env)
    processes.append(worker)
    with transaction.atomic():
        events = [publish(Slept(thing_id=uuid.uuid4(), seconds=0.1)) for _ in range(20)]
    # when they are run
    wait_for(lambda: Effect.objects.filter(handler="slow").count() == 20, timeout=60, what=worker.output)
    # then batches stopped at a delivery boundary and handed the rest back: no failure, one attempt each
    wait_for(lambda: Delivery.objects.filter(event__in=events, status="done").count() == 20, timeout=10)
    assert set(Delivery.objects.filter(event__in=events).values_list("attempts", "last_error")) == {(1, "")}
    assert "handed back" in worker.output()


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
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {0}  # sent, not started
    assert not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
    redis.delete("probe")


def _queued_ids(redis) -> int:
    return sum(len(batch) for batch in queued_delivery_batches(redis, "probe"))


def test_relay_and_worker_recover_when_the_database_drops_their_connections(processes):
    # given a relay and a worker that have been working
    processes.append(start_relay(**_lease(2)))
    processes.append(start_worker(queues="probe", **_lease(2)))
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
    # then the next events are still delivered, each once, and no attempt was spent on the lost connections
    ids = {e.event_id for e in events}
    wait_for(lambda: Effect.objects.filter(event_id__in=ids).count() == 15, timeout=60, what=processes[0].output)
    assert Effect.objects.filter(event_id__in=ids).values("handler", "event_id").distinct().count() == 15
    assert set(Delivery.objects.filter(event__in=events).values_list("attempts", flat=True)) == {1}
