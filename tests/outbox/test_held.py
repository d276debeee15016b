"""Deliveries an ordered handler holds back: which are held, by which earlier delivery, and how many per handler."""

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from outbox import selectors
from outbox.events import DomainEvent
from outbox.models import Delivery
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.outbox.probe.events import Hopped, Stepped

pytestmark = pytest.mark.django_db


def steps(event_class: type[DomainEvent] = Stepped, *, count: int = 5) -> list[Delivery]:
    """The deliveries of steps 1..count of one thing to the event's ordered handler, fanned out (all pending)."""
    thing = uuid.uuid4()
    with transaction.atomic():
        events = [publish(event_class(thing_id=thing, seq=seq)) for seq in range(1, count + 1)]
    fan_out(batch_size=100)
    return [Delivery.objects.get(event=event) for event in events]


def set_status(delivery: Delivery, status: str, **fields) -> None:
    error = "RuntimeError: step 2 cannot be recorded" if status == "dead" else ""
    Delivery.objects.filter(id=delivery.id).update(status=status, last_error=error, **fields)


def held_by(deliveries: list[Delivery]) -> dict[int, tuple[int, str]]:
    """{held delivery's step: (step it waits for, that one's status)}."""
    step = {d.id: number for number, d in enumerate(deliveries, start=1)}
    holds = selectors.deliveries_held(delivery_ids=step)
    return {step[held]: (step[holder.id], holder.status) for held, holder in holds.items()}


def test_steps_behind_a_dead_step_are_held_by_it():
    # given steps 1..5: 1 done, 2 dead
    deliveries = steps()
    set_status(deliveries[0], "done")
    set_status(deliveries[1], "dead")
    # when / then: 3, 4 and 5 are held by 2
    assert held_by(deliveries) == {3: (2, "dead"), 4: (2, "dead"), 5: (2, "dead")}
    holder = selectors.deliveries_held(delivery_ids=[deliveries[2].id])[deliveries[2].id]
    assert (holder.handler, holder.event_id, holder.last_error) == (
        "probe.record_step",
        deliveries[1].event_id,
        "RuntimeError: step 2 cannot be recorded",
    )


def test_steps_wait_for_the_earliest_unfinished_step_of_their_thing():
    # given steps 1..5, the first being run
    deliveries = steps()
    set_status(deliveries[0], "dispatched")
    # then the others wait for it, and it waits for nothing
    assert held_by(deliveries) == {n: (1, "dispatched") for n in (2, 3, 4, 5)}


def test_a_discarded_step_holds_nothing_back():
    # given steps 1..3: 1 done, 2 dead but discarded
    deliveries = steps(count=3)
    set_status(deliveries[0], "done")
    set_status(deliveries[1], "dead", resolved_at=timezone.now())
    # then 3 goes on: it waits for nothing
    assert held_by(deliveries) == {}


def test_a_dead_step_holds_nothing_back_for_a_skip_handler():
    # given hops 1..4 to a handler with on_dead="skip": 1 done, 2 dead
    deliveries = steps(Hopped, count=4)
    set_status(deliveries[0], "done")
    set_status(deliveries[1], "dead")
    # then 3 is not held, and 4 only waits its turn behind 3
    assert held_by(deliveries) == {4: (3, "pending")}


def test_another_things_steps_are_not_held():
    # given thing A's step 1 dead, and thing B's steps
    a, b = steps(count=2), steps(count=2)
    set_status(a[0], "dead")
    # then each step 2 waits only for its own thing's step 1
    holds = selectors.deliveries_held(delivery_ids=[d.id for d in a + b])
    assert {held: holder.id for held, holder in holds.items()} == {a[1].id: a[0].id, b[1].id: b[0].id}
    set_status(b[0], "done")
    assert selectors.deliveries_held(delivery_ids=[b[1].id]) == {}


def test_one_handlers_held_deliveries_are_found_without_naming_them():
    deliveries = steps(count=3)
    set_status(deliveries[0], "dead")
    held = selectors.deliveries_held(handler="probe.record_step")
    assert {held_id: holder.id for held_id, holder in held.items()} == {d.id: deliveries[0].id for d in deliveries[1:]}
    assert selectors.deliveries_held(handler="probe.record_hop") == {}


def test_deliveries_held_behind_a_dead_letter_are_counted_per_stop_handler_in_one_query():
    # given a thing whose step 2 is dead (3, 4, 5 held), one whose step 1 is running (2 waiting, not held
    # behind a dead letter), and hops behind a dead hop (a skip handler: not held)
    held = steps()
    set_status(held[0], "done")
    set_status(held[1], "dead")
    set_status(steps(count=2)[0], "dispatched")
    set_status(steps(Hopped, count=3)[0], "dead")
    # when
    with CaptureQueriesContext(connection) as queries:
        counts = selectors.held_behind_dead_counts()
    # then
    assert counts == {"probe.record_step": 3}
    assert len(queries) == 1


def test_every_stop_handler_is_counted_even_when_nothing_is_held():
    assert selectors.held_behind_dead_counts() == {"probe.record_step": 0}
