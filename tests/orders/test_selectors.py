"""The orders read side: the order's timeline (one selector, for the order page and the admin) and who may do what."""

import uuid

import pytest
from django.db import transaction

from orders import selectors
from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.factories import place_order
from tests.outbox.probe.events import Stepped
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


def test_the_timeline_names_each_events_cause_when_it_is_on_the_timeline():
    # given an order's events, one step caused by its confirmation and one by an event of no order
    order = place_order(confirm=True)
    confirmed = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    workflow = order.correlation_id
    with transaction.atomic():
        publish(Stepped(thing_id=uuid.uuid4(), seq=1), correlation_id=workflow, causation_id=confirmed.event_id)
        publish(Stepped(thing_id=uuid.uuid4(), seq=2), correlation_id=workflow, causation_id=uuid.uuid4())
    # when
    timeline = selectors.order_timeline(order_id=order.id)
    # then
    assert [(e.context, e.name, e.cause_type, e.caused_by) for e in timeline] == [
        ("orders", "OrderPlaced", "", ""),
        ("orders", "OrderConfirmed", "", ""),
        ("probe", "Stepped", "orders.OrderConfirmed", "OrderConfirmed"),
        ("probe", "Stepped", "", ""),
    ]


def test_each_entry_has_its_deliveries_and_what_holds_any_of_them():
    # given three steps of an ordered handler in an order's workflow, the second dead
    order = place_order()
    thing = uuid.uuid4()
    with transaction.atomic():
        steps = [publish(Stepped(thing_id=thing, seq=n), correlation_id=order.correlation_id) for n in (1, 2, 3)]
    fan_out(batch_size=100)
    first, second, third = (Delivery.objects.get(event=step) for step in steps)
    Delivery.objects.filter(id=first.id).update(status="done")
    Delivery.objects.filter(id=second.id).update(status="dead")
    # when
    entries = selectors.order_timeline(order_id=order.id)[1:]
    # then
    assert [[d.id for d in entry.deliveries] for entry in entries] == [[first.id], [second.id], [third.id]]
    assert [{held: by.id for held, by in entry.holds.items()} for entry in entries] == [{}, {}, {third.id: second.id}]


@pytest.mark.parametrize(
    ("status", "confirmable", "cancellable"),
    [("draft", True, True), ("confirmed", False, True), ("ready_to_ship", False, True), ("shipped", False, False)],
)
def test_whether_an_order_may_be_confirmed_or_cancelled_follows_its_status(status, confirmable, cancellable):
    order = Order(status=status)
    assert (order.is_confirmable, order.is_cancellable) == (confirmable, cancellable)


def test_who_may_confirm_and_cancel():
    order = place_order()
    customer = order.customer
    changer = make_user("sam", staff=True, perms=("orders.change_order",))
    viewer = make_user("vic", staff=True, perms=("orders.view_order",))
    people = (customer, changer, viewer)
    assert [selectors.user_may_confirm(user=u, order=order) for u in people] == [True, False, False]
    assert [selectors.user_may_cancel(user=u, order=order) for u in people] == [True, True, False]
