"""A customer cancels after confirming: money and stock come back; a shipped order stays shipped."""

import pytest

from inventory.models import Reservation
from inventory.selectors import stock_level
from orders.models import InvalidOrderTransition, Order
from orders.services import order_cancel
from outbox.models import OutboxEvent
from payments.models import Payment, SandboxCharge
from payments.services import authorisation_key
from shipping.models import Shipment
from tests.factories import make_product, place_order
from tests.flows.conftest import dead_letters_of, one, types_of, wait_until_final, wait_until_settled
from tests.support.processes import start_relay, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


@pytest.fixture
def held_fulfilment(no_live_outbox):
    """A relay and a worker for payments and inventory only: the saga and shipping wait.

    ``release()`` starts a worker for the orders and shipping queues too.
    """
    relay = start_relay(OUTBOX_LEASE_SECONDS="5")
    workers = [start_worker(queues="outbox,payments,inventory,notifications", OUTBOX_LEASE_SECONDS="5")]

    class Held:
        def release(self) -> None:
            workers.append(start_worker(queues="orders,shipping", OUTBOX_LEASE_SECONDS="5"))

        def logs(self) -> str:
            return "\n".join(p.output()[-3000:] for p in [*workers, relay])

    yield Held()
    for process in [*workers, relay]:
        process.stop()


def test_cancelling_after_payment_and_reservation_refunds_and_releases(held_fulfilment):
    # given a confirmed order whose payment is taken and stock reserved, not yet shipped
    product = make_product(on_hand=10)
    order = place_order(lines=[(product, 2)], token="tok_visa", confirm=True)
    wait_for(
        lambda: (
            Payment.objects.filter(order_id=order.id, status="authorised").exists()
            and Reservation.objects.filter(order_id=order.id, status="reserved").exists()
        ),
        timeout=30,
        what=f"payment and reservation\n{held_fulfilment.logs()}",
    )
    assert stock_level(sku=product.sku).reserved == 2
    # when the customer cancels
    order_cancel(order_id=order.id, reason="Found it cheaper elsewhere", by_user_id=order.customer_id)
    # then payments refunds and inventory releases
    wait_for(
        lambda: (
            Payment.objects.filter(order_id=order.id, status="refunded").exists()
            and Reservation.objects.filter(order_id=order.id, status="released").exists()
        ),
        timeout=30,
        what=f"refund and release\n{held_fulfilment.logs()}",
    )
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (10, 0)
    # and when the saga and shipping catch up, the order stays cancelled and nothing ships
    held_fulfilment.release()
    wait_for(
        lambda: Order.objects.get(pk=order.pk).saga.outcome == "cancelled",
        timeout=30,
        what=f"the saga to learn of the cancellation\n{held_fulfilment.logs()}",
    )
    events = wait_until_settled(order, live_outbox=held_fulfilment)
    order.refresh_from_db()
    assert (order.status, order.cancel_code, order.cancel_reason) == (
        "cancelled",
        "customer",
        "Found it cheaper elsewhere",
    )
    assert "orders.OrderReadyToShip" not in types_of(events)
    assert not Shipment.objects.filter(order_id=order.id, status="booked").exists()
    # the saga had not learnt of the payment, so orders did not flag a refund: payments refunded what it took anyway
    assert one(events, "orders.OrderCancelled").payload["refund_due"] is False
    assert one(events, "payments.PaymentRefunded").causation_id == one(events, "orders.OrderCancelled").event_id
    assert one(events, "inventory.InventoryReleased").payload["lines"] == [{"sku": product.sku, "quantity": 2}]
    assert dead_letters_of(order) == []


def test_cancelling_right_after_confirming_leaves_no_money_taken_and_no_stock_held(live_outbox):
    # given
    product = make_product(on_hand=10)
    order = place_order(lines=[(product, 3)], token="tok_visa", confirm=True)
    # when the customer cancels at once, racing the payment and the reservation
    order_cancel(order_id=order.id, reason="Oops", by_user_id=order.customer_id)
    # then, whichever ran first, nothing is kept
    wait_until_settled(order, live_outbox=live_outbox)
    order.refresh_from_db()
    assert (order.status, order.saga.outcome) == ("cancelled", "cancelled")
    assert Payment.objects.get(order_id=order.id).status in {"voided", "refunded"}
    assert not SandboxCharge.objects.filter(idempotency_key=authorisation_key(order.id), status="authorised").exists()
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (10, 0)
    assert not Shipment.objects.filter(order_id=order.id, status="booked").exists()
    assert dead_letters_of(order) == []


def test_cancelling_a_shipped_order_is_refused_and_changes_nothing(live_outbox):
    # given a shipped order
    product = make_product(on_hand=10)
    order = place_order(lines=[(product, 1)], token="tok_visa", confirm=True)
    [order] = wait_until_final([order], live_outbox=live_outbox)
    wait_until_settled(order, live_outbox=live_outbox)
    assert order.status == "shipped"
    # when / then
    with pytest.raises(InvalidOrderTransition, match="is shipped: it cannot be cancelled"):
        order_cancel(order_id=order.id, reason="Too late", by_user_id=order.customer_id)
    order.refresh_from_db()
    assert order.status == "shipped"
    assert not OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderCancelled").exists()
    assert Payment.objects.get(order_id=order.id).status == "authorised"
