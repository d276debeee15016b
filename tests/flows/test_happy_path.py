"""An order paid with a good card goes from confirmed to shipped through real workers."""

import pytest

from inventory.selectors import stock_level
from notifications.models import Notification
from payments.models import Payment, SandboxCharge
from shipping.models import Shipment
from tests.factories import make_product, place_order
from tests.flows.conftest import dead_letters_of, one, wait_until_final, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


def test_an_order_confirmed_with_a_good_card_is_paid_reserved_shipped_and_mailed_once(live_outbox):
    # given a product with 10 units and an order for 3 of them
    product = make_product(price="19.99", on_hand=10)
    # when the customer confirms
    order = place_order(lines=[(product, 3)], token="tok_visa", confirm=True)
    # then it ships
    [order] = wait_until_final([order], live_outbox=live_outbox)
    events = wait_until_settled(order, live_outbox=live_outbox)
    assert order.status == "shipped", order.cancel_reason
    assert order.tracking_number.startswith("SBX")
    # exactly one payment authorised, and the sandbox charged once
    payment = Payment.objects.get(order_id=order.id)
    assert (payment.status, payment.amount, payment.currency) == ("authorised", order.total_amount, "EUR")
    assert SandboxCharge.objects.filter(reference=payment.provider_reference, status="authorised").count() == 1
    # the stock moved from reserved to shipped
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (7, 0)
    shipment = Shipment.objects.get(order_id=order.id)
    assert (shipment.status, shipment.tracking_number) == ("booked", order.tracking_number)
    # one confirmation and one shipped mail, with the tracking number
    mails = Notification.objects.filter(order_id=order.id)
    assert sorted(mails.values_list("kind", flat=True)) == ["order_confirmed", "order_shipped"]
    assert order.tracking_number in mails.get(kind="order_shipped").body
    assert set(mails.values_list("recipient", flat=True)) == {order.customer_email}
    # the order's events form one correlation with correct causation links
    assert {e.correlation_id for e in events} == {order.correlation_id}
    assert_causal_chain(events)
    assert dead_letters_of(order) == []


def assert_causal_chain(events) -> None:
    confirmed = one(events, "orders.OrderConfirmed")
    paid = one(events, "payments.PaymentProcessed")
    reserved = one(events, "inventory.InventoryReserved")
    ready = one(events, "orders.OrderReadyToShip")
    arranged = one(events, "shipping.ShippingArranged")
    shipped = one(events, "orders.OrderShipped")
    assert paid.causation_id == confirmed.event_id
    assert reserved.causation_id == confirmed.event_id
    # the saga decided on whichever of the two it learnt second
    assert ready.causation_id in {paid.event_id, reserved.event_id}
    assert ready.id > max(paid.id, reserved.id)
    assert arranged.causation_id == ready.event_id
    assert shipped.causation_id == arranged.event_id
    positions = [e.id for e in (confirmed, ready, arranged, shipped)]
    assert positions == sorted(positions)
