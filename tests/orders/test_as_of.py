"""An order as it was at any past instant, folded from its events (``orders.selectors.order_as_of``).

The orders are taken through their states by the real handlers, run in-process
one delivery at a time, so the log holds what production writes: the orders
context's events and those payments, inventory and shipping wrote for it.
"""

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from orders.models import Order
from orders.selectors import order_as_of, order_inventory_status, order_payment_status, order_shipment
from orders.services import order_cancel, order_confirm
from outbox.models import OutboxEvent
from tests.factories import CONFIRMED_TO_SHIPPED, make_product, place_order, take_through

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])

MICROSECOND = dt.timedelta(microseconds=1)
# When each of the order's own changes counts from: the time the order records for it.
RECORDED_AT = {
    "orders.OrderPlaced": "created_at",
    "orders.OrderConfirmed": "confirmed_at",
    "orders.OrderCancelled": "cancelled_at",
    "orders.OrderShipped": "shipped_at",
}


def happened(order: Order, event_type: str) -> dt.datetime:
    """When the order's (only) ``event_type`` happened: the order's own time for its own changes, else the log's."""
    event = OutboxEvent.objects.filter(correlation_id=order.correlation_id, type=event_type).get()
    return getattr(order, RECORDED_AT[event_type]) if event_type in RECORDED_AT else event.occurred_at


def seen(order: Order, at: dt.datetime) -> tuple | None:
    """What the order was at ``at``: status, payment, stock and tracking number; None if it did not exist yet."""
    snapshot = order_as_of(order=order, at=at)
    if snapshot is None:
        return None
    tracking = snapshot.shipment.tracking_number if snapshot.shipment else None
    return snapshot.status, snapshot.payment_status, snapshot.inventory_status, tracking


def assert_seen_step_by_step(order: Order, steps: list[tuple[str, tuple]]) -> None:
    """Just before each event the order is as the step before left it; from the event on, as the step says."""
    before = None
    for event_type, after in steps:
        at = happened(order, event_type)
        assert seen(order, at - MICROSECOND) == before, f"just before {event_type}"
        assert seen(order, at) == after, f"as of {event_type}"
        before = after


def test_an_order_taken_from_draft_to_shipped_is_seen_as_it_was_before_and_after_each_of_its_events():
    # given an order placed, confirmed, then paid, reserved, booked and shipped by the handlers, one by one
    order = place_order(lines=[(make_product(on_hand=5), 2)])
    order_confirm(order_id=order.id)
    order = take_through(order)
    assert order.status == Order.Status.SHIPPED
    tracking = order.tracking_number
    # when it is asked for as of each instant: then
    assert_seen_step_by_step(
        order,
        [
            ("orders.OrderPlaced", ("draft", "not_requested", "not_requested", None)),
            ("orders.OrderConfirmed", ("confirmed", "pending", "pending", None)),
            ("payments.PaymentProcessed", ("confirmed", "authorised", "pending", None)),
            ("inventory.InventoryReserved", ("confirmed", "authorised", "reserved", None)),
            ("orders.OrderReadyToShip", ("ready_to_ship", "authorised", "reserved", None)),
            ("shipping.ShippingArranged", ("ready_to_ship", "authorised", "reserved", None)),
            ("orders.OrderShipped", ("shipped", "authorised", "reserved", tracking)),
            ("inventory.StockShipped", ("shipped", "authorised", "shipped", tracking)),
        ],
    )


def test_a_cancelled_order_is_seen_cancelled_then_refunded_and_released_as_each_happened():
    # given an order paid and reserved, then cancelled by its customer, then refunded and released
    order = place_order(lines=[(make_product(on_hand=5), 1)], confirm=True)
    take_through(order, CONFIRMED_TO_SHIPPED[:4])
    order_cancel(order_id=order.id, reason="Changed my mind.", by_user_id=order.customer_id)
    refund_and_release = (
        ("orders.OrderCancelled", "payments.refund_payment"),
        ("orders.OrderCancelled", "inventory.release_stock"),
    )
    order = take_through(order, refund_and_release)
    # when it is asked for as of each instant: then
    assert_seen_step_by_step(
        order,
        [
            ("orders.OrderPlaced", ("draft", "not_requested", "not_requested", None)),
            ("orders.OrderConfirmed", ("confirmed", "pending", "pending", None)),
            ("payments.PaymentProcessed", ("confirmed", "authorised", "pending", None)),
            ("inventory.InventoryReserved", ("confirmed", "authorised", "reserved", None)),
            ("orders.OrderReadyToShip", ("ready_to_ship", "authorised", "reserved", None)),
            ("orders.OrderCancelled", ("cancelled", "authorised", "reserved", None)),
            ("payments.PaymentRefunded", ("cancelled", "refunded", "reserved", None)),
            ("inventory.InventoryReleased", ("cancelled", "refunded", "released", None)),
        ],
    )
    # and the reason is there from the cancellation on, and not before it
    cancelled_at = happened(order, "orders.OrderCancelled")
    assert order_as_of(order=order, at=cancelled_at).cancel_reason == "Changed my mind."
    assert order_as_of(order=order, at=cancelled_at - MICROSECOND).cancel_reason is None


def test_a_declined_payment_is_seen_failed_then_the_order_cancelled_for_it():
    # given an order whose card is declined; the saga cancels it
    order = place_order(token="tok_decline", confirm=True)
    declined_then_cancelled = (
        ("orders.OrderConfirmed", "payments.authorise_payment"),
        ("payments.PaymentFailed", "orders.record_payment_failed"),
    )
    order = take_through(order, declined_then_cancelled)
    # when it is asked for as of each instant: then
    assert_seen_step_by_step(
        order,
        [
            ("orders.OrderPlaced", ("draft", "not_requested", "not_requested", None)),
            ("orders.OrderConfirmed", ("confirmed", "pending", "pending", None)),
            ("payments.PaymentFailed", ("confirmed", "failed", "pending", None)),
            ("orders.OrderCancelled", ("cancelled", "failed", "cancelled", None)),
        ],
    )


def test_as_of_now_and_any_later_time_an_order_is_what_its_detail_shows_now():
    # given a shipped order
    order = place_order(lines=[(make_product(price="2.50"), 3), (make_product(price="4.00"), 1)], confirm=True)
    order = Order.objects.prefetch_related("lines").select_related("saga").get(pk=take_through(order).pk)
    # when
    before = timezone.now()
    now, later = order_as_of(order=order, at=None), order_as_of(order=order, at=before + dt.timedelta(days=365))
    # then every field is the order's own, as the detail shows it, and the time is now (the future is not known)
    for snapshot in (now, later):
        assert before <= snapshot.as_of <= timezone.now()
        assert (snapshot.id, snapshot.status) == (order.id, "shipped")
        assert snapshot.shipping_address == order.shipping_address
        assert (snapshot.total.amount, snapshot.total.currency) == (order.total_amount, order.currency)
        assert [(line.sku, line.name, line.quantity, line.unit_price.amount) for line in snapshot.lines] == [
            (line.sku, line.name, line.quantity, line.unit_price) for line in order.lines.all()
        ]
        assert (snapshot.payment_status, snapshot.inventory_status, snapshot.shipment) == (
            order_payment_status(order=order),
            order_inventory_status(order=order),
            order_shipment(order=order),
        )
        assert (snapshot.created_at, snapshot.confirmed_at, snapshot.shipped_at, snapshot.cancelled_at) == (
            order.created_at,
            order.confirmed_at,
            order.shipped_at,
            None,
        )


def test_before_it_was_created_an_order_did_not_exist():
    # given
    order = place_order()
    # when / then
    assert order_as_of(order=order, at=order.created_at - MICROSECOND) is None
    assert order_as_of(order=order, at=dt.datetime(2001, 1, 1, tzinfo=dt.UTC)) is None
    assert order_as_of(order=order, at=order.created_at).status == "draft"


def test_an_event_stored_in_an_older_version_is_read_through_its_upcaster():
    # given a draft whose confirmation the log holds as orders.OrderConfirmed v1 (a float total, nothing else)
    order = place_order()
    OutboxEvent.objects.create(
        type="orders.OrderConfirmed",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="orders.Order",
        aggregate_id=str(order.id),
        correlation_id=order.correlation_id,
        payload={"order_id": str(order.id), "order_total": float(order.total_amount), "currency": order.currency},
    )
    # when
    snapshot = order_as_of(order=order, at=None)
    # then
    assert (snapshot.status, snapshot.payment_status, snapshot.events) == ("confirmed", "pending", 2)


def test_other_workflows_and_unrelated_events_of_the_order_are_not_folded():
    # given two orders, and an event of another kind in the first one's workflow
    order, other = place_order(), place_order(confirm=True)
    OutboxEvent.objects.create(
        type="probe.Stepped",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="probe.Thing",
        aggregate_id=str(uuid.uuid4()),
        correlation_id=order.correlation_id,
        payload={"thing_id": str(uuid.uuid4()), "seq": 1},
    )
    # when
    snapshot = order_as_of(order=order, at=None)
    # then only its own OrderPlaced counts
    assert (snapshot.status, snapshot.events) == ("draft", 1)
    assert order_as_of(order=other, at=None).status == "confirmed"


def test_a_time_without_a_utc_offset_is_refused():
    order = place_order()
    with pytest.raises(ValueError, match="timezone-aware"):
        order_as_of(order=order, at=dt.datetime(2030, 1, 1))
