"""An order for more than is in stock is cancelled and its payment refunded, through real workers."""

import pytest

from inventory.models import Reservation
from inventory.selectors import stock_level
from notifications.models import Notification
from payments.models import Payment, SandboxCharge
from tests.factories import make_product, place_order
from tests.flows.conftest import dead_letters_of, one, wait_until_final, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


def test_an_order_short_of_stock_is_cancelled_and_its_authorised_payment_refunded(live_outbox):
    # given two products, one of which has too few units
    plenty, scarce = make_product(on_hand=100), make_product(on_hand=1)
    # when
    order = place_order(lines=[(plenty, 1), (scarce, 2)], token="tok_visa", confirm=True)
    # then
    [order] = wait_until_final([order], live_outbox=live_outbox)
    events = wait_until_settled(order, live_outbox=live_outbox)
    assert (order.status, order.cancel_code) == ("cancelled", "out_of_stock")
    assert order.cancel_reason == f"Out of stock: {scarce.sku}"
    short = one(events, "inventory.InventoryReservationFailed")
    assert short.payload["shortages"] == [{"sku": scarce.sku, "requested": 2, "available": 1}]
    # nothing was reserved: all lines or none
    assert Reservation.objects.get(order_id=order.id).status == "failed"
    assert stock_level(sku=plenty.sku).reserved == 0
    # the payment was authorised, then refunded
    payment = Payment.objects.get(order_id=order.id)
    assert payment.status == "refunded"
    refunded = one(events, "payments.PaymentRefunded")
    assert refunded.payload["amount"] == {"amount": str(order.total_amount), "currency": "EUR"}
    assert refunded.causation_id == one(events, "orders.OrderCancelled").event_id
    assert SandboxCharge.objects.get(reference=payment.provider_reference).status == "refunded"
    assert Notification.objects.filter(order_id=order.id, kind="order_cancelled").count() == 1
    assert dead_letters_of(order) == []
