"""The order saga, in-process: its decisions do not depend on the order or repetition of its events."""

import datetime as dt
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.events import InventoryReservationFailed, InventoryReserved, Shortage, StockLine
from orders import handlers, saga
from orders.events import OrderCancelled
from orders.models import Order
from orders.services import order_cancel
from outbox.events import Money, registry
from outbox.models import OutboxEvent
from payments.events import PaymentFailed, PaymentProcessed
from shipping.events import ShippingArranged
from tests.factories import envelope_for, handle, make_product, place_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def product():
    return make_product(price="5.00", on_hand=1_000_000)


def facts(order: Order, *, paid: bool, reserved: bool) -> list[tuple]:
    """What the other contexts would tell the saga about ``order``: (handler, event) pairs."""
    payment_id, reservation_id = uuid.uuid4(), uuid.uuid4()
    money = Money(amount=order.total_amount, currency=order.currency)
    if paid:
        payment = PaymentProcessed(payment_id=payment_id, order_id=order.id, amount=money, provider_reference="ch_1")
        told = [(handlers.record_payment_secured, payment)]
    else:
        payment = PaymentFailed(payment_id=payment_id, order_id=order.id, reason="card declined")
        told = [(handlers.record_payment_failed, payment)]
    if reserved:
        stock = InventoryReserved(
            reservation_id=reservation_id, order_id=order.id, lines=(StockLine(sku="X", quantity=1),)
        )
        told.append((handlers.record_stock_secured, stock))
    else:
        short = (Shortage(sku="X", requested=1, available=0),)
        stock = InventoryReservationFailed(reservation_id=reservation_id, order_id=order.id, shortages=short)
        told.append((handlers.record_stock_short, stock))
    if paid and reserved:
        arranged = ShippingArranged(
            shipment_id=uuid.uuid4(),
            order_id=order.id,
            carrier="Sandbox Parcel",
            tracking_number="SBX000000000042",
            estimated_delivery=dt.date(2030, 1, 2),
        )
        told.append((handlers.record_shipment_arranged, arranged))
    return [(handler, event, envelope_for(event, correlation_id=order.correlation_id)) for handler, event in told]


def own_cancellations(order: Order) -> list[tuple]:
    """The OrderCancelled events of the order, as the saga would get them back from the outbox."""
    rows = OutboxEvent.objects.filter(correlation_id=order.correlation_id, type=OrderCancelled.event_type)
    told = [(registry.decode(r.type, r.version, r.payload), r) for r in rows]
    return [
        (
            handlers.record_order_cancelled,
            event,
            envelope_for(event, event_id=r.event_id, correlation_id=r.correlation_id),
        )
        for event, r in told
    ]


def published(order: Order, type_: str) -> int:
    return OutboxEvent.objects.filter(correlation_id=order.correlation_id, type=f"orders.{type_}").count()


def expected_outcome(*, paid: bool, reserved: bool, customer_cancels: bool) -> tuple[str, set[str]]:
    if customer_cancels:
        return "cancelled", {"customer"}
    if paid and reserved:
        return "shipped", {""}
    codes = ({"payment_failed"} if not paid else set()) | ({"out_of_stock"} if not reserved else set())
    return "cancelled", codes


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    paid=st.booleans(),
    reserved=st.booleans(),
    customer_cancels=st.booleans(),
    data=st.data(),
)
def test_the_saga_decides_the_same_whatever_the_order_and_repetition_of_its_events(
    product, paid, reserved, customer_cancels, data
):
    # given a confirmed order (perhaps cancelled by its customer at once) and what the other contexts say about it
    order = place_order(lines=[(product, 1)], confirm=True)
    if customer_cancels:
        order_cancel(order_id=order.id, reason="Changed my mind", by_user_id=order.customer_id)
        told = facts(order, paid=paid, reserved=reserved) + own_cancellations(order)
    else:
        told = facts(order, paid=paid, reserved=reserved)
    repeats = data.draw(st.lists(st.sampled_from(told), max_size=4), label="redelivered")
    arrival = data.draw(st.permutations(told + repeats), label="arrival order")
    # when the saga hears it all in that order, then its own cancellation (twice) if it made one
    for handler, event, envelope in arrival:
        handle(handler, event, envelope)
    for handler, event, envelope in own_cancellations(order) * 2:
        handle(handler, event, envelope)
    # then
    outcome, codes = expected_outcome(paid=paid, reserved=reserved, customer_cancels=customer_cancels)
    order.refresh_from_db()
    assert (order.saga.outcome, order.status) == (outcome, outcome)
    assert order.cancel_code in codes
    assert published(order, "OrderCancelled") == (outcome == "cancelled")
    assert published(order, "OrderReadyToShip") == published(order, "OrderShipped") == (outcome == "shipped")


def test_payment_then_stock_makes_the_order_ready_to_ship_once(product):
    # given
    order = place_order(lines=[(product, 1)], confirm=True)
    payment, stock, _shipping = facts(order, paid=True, reserved=True)
    # when
    handle(*payment)
    assert Order.objects.get(pk=order.pk).status == "confirmed"
    handle(*stock)
    handle(*stock)
    # then
    order.refresh_from_db()
    assert (order.status, order.saga.payment, order.saga.stock) == ("ready_to_ship", "secured", "secured")
    assert published(order, "OrderReadyToShip") == 1


def test_a_failed_payment_cancels_the_order_with_the_reason(product):
    # given
    order = place_order(lines=[(product, 1)], confirm=True)
    payment, _stock = facts(order, paid=False, reserved=True)
    # when
    handle(*payment)
    # then
    order.refresh_from_db()
    assert (order.status, order.cancel_code, order.cancel_reason) == (
        "cancelled",
        "payment_failed",
        "Payment failed: card declined",
    )
    assert order.saga.outcome == "cancelled"


def test_shipping_arranged_marks_a_ready_order_shipped_with_its_tracking_number(product):
    # given an order that is ready to ship
    order = place_order(lines=[(product, 1)], confirm=True)
    payment, stock, shipping = facts(order, paid=True, reserved=True)
    handle(*payment)
    handle(*stock)
    # when
    handle(*shipping)
    # then
    order.refresh_from_db()
    assert (order.status, order.carrier, order.tracking_number) == ("shipped", "Sandbox Parcel", "SBX000000000042")
    assert order.estimated_delivery == dt.date(2030, 1, 2)


def tell_all_but_the_deciding_fact(when: str, order: Order) -> list[tuple]:
    """Tell the saga what comes before the decision ``when`` of its table; return what makes it decide."""
    payment, stock, *shipping = facts(order, paid=when != "payment failed", reserved=when != "stock short")
    if when == "the customer or staff cancelled the order":
        order_cancel(order_id=order.id, reason="Changed my mind", by_user_id=order.customer_id)
        return own_cancellations(order)
    if when == "shipment arranged":
        handle(*payment)
        handle(*stock)
        return shipping
    if when == "payment and stock secured":
        handle(*payment)
        return [stock]
    return [payment] if when == "payment failed" else [stock]


@pytest.mark.parametrize("row", saga.TRANSITIONS, ids=lambda row: row.when)
def test_each_row_of_the_saga_table_is_what_the_saga_does(product, row):
    # given a confirmed order, and the saga told all but the fact this row decides on
    order = place_order(lines=[(product, 1)], confirm=True)
    deciding = tell_all_but_the_deciding_fact(row.when, order)
    before = set(OutboxEvent.objects.filter(correlation_id=order.correlation_id).values_list("id", flat=True))
    # when it learns that fact
    for handler, event, envelope in deciding:
        handle(handler, event, envelope)
    # then it moves to the row's outcome and publishes the row's event, which the flow diagram draws
    order.refresh_from_db()
    published_now = OutboxEvent.objects.filter(correlation_id=order.correlation_id).exclude(id__in=before)
    assert order.saga.outcome == row.target
    assert list(published_now.values_list("type", flat=True)) == ([row.publishes] if row.publishes else [])
