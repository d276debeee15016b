"""Per-aggregate ordering for a handler that declares it, with several workers."""

import uuid

import pytest
from django.db import transaction
from prometheus_client.parser import text_string_to_metric_families

from outbox import metrics
from outbox.dispatch import kick_relay
from outbox.models import Delivery
from outbox.publishing import publish
from outbox.selectors import deliveries_held
from outbox.services import dead_letter_discard, dead_letter_retry
from tests.outbox.probe.events import Hopped, Stepped
from tests.outbox.probe.models import Effect, Switch
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


# held behind a dead step, shown, counted, and released in order


@pytest.fixture
def workflow() -> uuid.UUID:
    """The workflow (correlation id) the probe's steps join, so that the event log's search shows them."""
    return uuid.uuid4()


def publish_steps(event_class: type[Stepped | Hopped], workflow, *, failing: int = 2) -> tuple[uuid.UUID, list]:
    """Steps 1..5 of one thing, in the workflow; step ``failing`` fails until the steps are mended."""
    thing = uuid.uuid4()
    with transaction.atomic():
        steps = [
            publish(event_class(thing_id=thing, seq=seq, fail=seq == failing), correlation_id=workflow)
            for seq in range(1, 6)
        ]
    return thing, steps


def recorded(handler: str, thing: uuid.UUID) -> list[int]:
    """The steps a handler recorded for a thing, in the order it recorded them."""
    return list(
        Effect.objects.filter(handler=handler, aggregate_id=str(thing)).order_by("id").values_list("seq", flat=True)
    )


def held_metric(handler: str) -> float | None:
    """What ``/metrics`` shows of a handler's held deliveries (the outbox's exposition)."""
    return next(
        (
            sample.value
            for family in text_string_to_metric_families(metrics.exposition().decode())
            for sample in family.samples
            if sample.name == "outbox_held_deliveries" and sample.labels == {"handler": handler}
        ),
        None,
    )


def logged_events(client, workflow: uuid.UUID) -> dict:
    """The event log's search for the workflow (``GET /api/events/``), as staff allowed to read it sees it."""
    return client.get("/api/events/", {"correlation_id": str(workflow)}).json()


def stopped_at_step_two(live_outbox, workflow) -> tuple[uuid.UUID, list[Delivery]]:
    """Steps 1..5 for the on_dead="stop" handler, run until step 2 is dead: step 1 done, 3 to 5 held behind it."""
    thing, steps = publish_steps(Stepped, workflow)
    wait_for(lambda: Delivery.objects.filter(event__in=steps).count() == 5, timeout=20, what=live_outbox.logs)
    deliveries = [Delivery.objects.get(event=step) for step in steps]
    behind = {d.id: (deliveries[1].id, "dead") for d in deliveries[2:]}
    wait_for(
        lambda: {held: (by.id, by.status) for held, by in deliveries_held(delivery_ids=behind).items()} == behind,
        timeout=30,
        what=live_outbox.logs,
    )
    return thing, deliveries


def test_steps_behind_a_dead_step_are_held_shown_and_counted_then_run_in_order_once_it_is_retried(
    live_outbox, workflow, admin_client
):
    # given steps 1..5 of a thing, in one workflow, step 2 failing for good
    thing, deliveries = stopped_at_step_two(live_outbox, workflow)
    dead = deliveries[1]
    # then step 1 is done, 2 dead, and 3 to 5 pending, held by 2
    assert [Delivery.objects.get(id=d.id).status for d in deliveries] == [
        "done",
        "dead",
        "pending",
        "pending",
        "pending",
    ]
    assert recorded("step", thing) == [1]
    # and the event log says so
    body = logged_events(admin_client, workflow)
    shown = {row["payload"].get("seq"): row["deliveries"] for row in body["results"] if row["type"] == "probe.Stepped"}
    held_by = {"delivery_id": dead.id, "event_id": str(dead.event.event_id), "handler": "probe.record_step"}
    assert [shown[seq][0]["held_by"] for seq in (1, 2)] == [None, None]
    assert [shown[seq][0]["held_by"] for seq in (3, 4, 5)] == [{**held_by, "status": "dead"}] * 3
    # and /metrics counts three held deliveries
    assert held_metric("probe.record_step") == 3
    # when the cause is mended and step 2 retried
    Switch.objects.create(name="steps-mended", on=True)
    assert dead_letter_retry(deliveries=Delivery.objects.filter(id=dead.id)) == 1
    # then 2 to 5 are recorded, in order, and nothing is held any more
    wait_for(lambda: len(recorded("step", thing)) == 5, timeout=30, what=live_outbox.logs)
    assert recorded("step", thing) == [1, 2, 3, 4, 5]
    assert {d.status for d in Delivery.objects.filter(id__in=[d.id for d in deliveries])} == {"done"}
    assert held_metric("probe.record_step") == 0


def test_steps_behind_a_dead_step_run_in_order_once_it_is_discarded(live_outbox, workflow):
    # given steps 1..5 of a thing, step 2 dead and 3 to 5 held behind it
    thing, deliveries = stopped_at_step_two(live_outbox, workflow)
    # when step 2 is discarded (the service kicks the relay as it commits)
    assert dead_letter_discard(deliveries=Delivery.objects.filter(id=deliveries[1].id), user=None) == 1
    # then 3 to 5 are recorded, in order, and 2 never
    wait_for(lambda: len(recorded("step", thing)) == 4, timeout=30, what=live_outbox.logs)
    assert recorded("step", thing) == [1, 3, 4, 5]
    assert held_metric("probe.record_step") == 0


def test_a_skip_handler_goes_past_a_dead_step_on_its_own_and_holds_nothing(live_outbox, workflow, admin_client):
    # given steps 1..5 of a thing for the on_dead="skip" handler, step 2 failing for good
    thing, steps = publish_steps(Hopped, workflow)
    # when they have run
    wait_for(lambda: len(recorded("hop", thing)) == 4, timeout=30, what=live_outbox.logs)
    # then 1, 3, 4 and 5 were recorded in order, 2 is dead, and nothing is or was shown held
    assert recorded("hop", thing) == [1, 3, 4, 5]
    statuses = [Delivery.objects.get(event=step).status for step in steps]
    assert statuses == ["done", "dead", "done", "done", "done"]
    assert deliveries_held(handler="probe.record_hop") == {}
    body = logged_events(admin_client, workflow)
    assert all(d["held_by"] is None for row in body["results"] for d in row["deliveries"])
    assert held_metric("probe.record_hop") is None  # only on_dead="stop" handlers hold behind the dead
