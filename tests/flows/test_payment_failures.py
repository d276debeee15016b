"""Payment that fails, for good or for a while, through real workers."""

import pytest

from inventory.models import Reservation
from inventory.selectors import stock_level
from notifications.models import Notification
from outbox.models import Delivery
from payments import sandbox
from payments.models import Payment, SandboxCharge
from payments.services import authorisation_key
from shipping.models import Shipment
from tests.factories import make_product, place_order
from tests.flows.conftest import dead_letters_of, one, types_of, wait_until_final, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


def test_a_declined_card_cancels_the_order_releases_its_stock_and_mails_the_customer_once(live_outbox):
    # given
    product = make_product(on_hand=10)
    # when
    order = place_order(lines=[(product, 4)], token="tok_decline_insufficient_funds", confirm=True)
    # then
    [order] = wait_until_final([order], live_outbox=live_outbox)
    events = wait_until_settled(order, live_outbox=live_outbox)
    assert (order.status, order.cancel_code) == ("cancelled", "payment_failed")
    assert order.cancel_reason == "Payment failed: card declined"
    assert Payment.objects.get(order_id=order.id).status == "declined"
    # whatever inventory reserved for it went back (or it never reserved: it learnt of the cancellation first)
    assert Reservation.objects.get(order_id=order.id).status in {"released", "cancelled"}
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (10, 0)
    # no shipment
    assert not Shipment.objects.filter(order_id=order.id, status="booked").exists()
    assert "shipping.ShippingArranged" not in types_of(events)
    # mailed once about the cancellation, with the reason
    cancellation = Notification.objects.get(order_id=order.id, kind="order_cancelled")
    assert "card declined" in cancellation.body
    assert one(events, "orders.OrderCancelled").causation_id == one(events, "payments.PaymentFailed").event_id
    assert dead_letters_of(order) == []


def test_a_flaky_gateway_is_retried_by_the_outbox_and_charges_once(live_outbox):
    # given a card whose first two calls time out
    product = make_product(on_hand=10)
    # when
    order = place_order(lines=[(product, 1)], token="tok_flaky", confirm=True)
    # then the order still ships
    [order] = wait_until_final([order], live_outbox=live_outbox)
    events = wait_until_settled(order, live_outbox=live_outbox)
    assert order.status == "shipped", order.cancel_reason
    confirmed = one(events, "orders.OrderConfirmed")
    delivery = Delivery.objects.get(event__event_id=confirmed.event_id, handler="payments.authorise_payment")
    assert (delivery.status, delivery.attempts) == ("done", 3)
    # three calls reached the gateway, one charge was made
    key = authorisation_key(order.id)
    assert sandbox.calls(idempotency_key=key) == 3
    assert SandboxCharge.objects.filter(idempotency_key=key).count() == 1
    assert Payment.objects.get(order_id=order.id).status == "authorised"
    assert dead_letters_of(order) == []


def test_a_gateway_that_stays_down_fails_the_payment_when_attempts_run_out(live_outbox):
    # given a card whose every call times out
    product = make_product(on_hand=10)
    # when
    order = place_order(lines=[(product, 1)], token="tok_unavailable", confirm=True)
    # then the last attempt turns into PaymentFailed, not a dead letter
    [order] = wait_until_final([order], live_outbox=live_outbox, timeout=60)
    events = wait_until_settled(order, live_outbox=live_outbox)
    assert (order.status, order.cancel_code) == ("cancelled", "payment_failed")
    assert "unavailable" in order.cancel_reason
    confirmed = one(events, "orders.OrderConfirmed")
    delivery = Delivery.objects.get(event__event_id=confirmed.event_id, handler="payments.authorise_payment")
    assert (delivery.status, delivery.attempts) == ("done", 5)
    assert not SandboxCharge.objects.filter(idempotency_key=authorisation_key(order.id)).exists()
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (10, 0)
    assert dead_letters_of(order) == []
