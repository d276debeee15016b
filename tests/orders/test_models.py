"""The order's state machine: draft -> confirmed -> ready_to_ship -> shipped, or cancelled before shipped."""

import datetime as dt

import pytest

from orders.models import InvalidOrderTransition, Order

SHIPMENT = {"carrier": "C", "tracking_number": "T1", "estimated_delivery": dt.date(2030, 1, 1)}


def test_the_happy_path_moves_through_every_state():
    # given
    order = Order(status=Order.Status.DRAFT)
    # when
    order.confirm()
    order.mark_ready_to_ship()
    order.mark_shipped(**SHIPMENT)
    # then
    assert order.status == "shipped"
    assert order.confirmed_at is not None
    assert order.shipped_at is not None


@pytest.mark.parametrize("status", ["draft", "confirmed", "ready_to_ship"])
def test_an_order_can_be_cancelled_until_it_ships(status):
    order = Order(status=status)
    order.cancel(code="customer", reason="no longer needed")
    assert (order.status, order.cancel_reason) == ("cancelled", "no longer needed")


@pytest.mark.parametrize(
    ("status", "move"),
    [
        ("shipped", lambda o: o.cancel(code="customer", reason="x")),
        ("cancelled", lambda o: o.cancel(code="customer", reason="x")),
        ("draft", lambda o: o.mark_ready_to_ship()),
        ("confirmed", lambda o: o.mark_shipped(**SHIPMENT)),
        ("cancelled", lambda o: o.confirm()),
        ("cancelled", lambda o: o.mark_ready_to_ship()),
    ],
)
def test_illegal_moves_raise_a_domain_error_and_leave_the_state(status, move):
    order = Order(status=status)
    with pytest.raises(InvalidOrderTransition, match=f"is {status}: it cannot be"):
        move(order)
    assert order.status == status
