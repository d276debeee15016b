"""The sandbox provider's state is shared by every process and outlives our transactions, through real workers."""

import pytest

from orders.services import order_confirm
from outbox.events import Money
from outbox.models import Delivery, OutboxEvent
from payments import sandbox
from payments.gateway import GatewayUnavailable, gateway
from payments.handlers import AUTHORISE_HANDLER
from payments.models import Payment
from payments.services import authorisation_key
from tests.factories import place_order
from tests.flows.conftest import wait_until_settled
from tests.support.processes import start_relay, start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


def _authorised(order, *, logs) -> Payment:
    return wait_for(
        lambda: Payment.objects.filter(order_id=order.id, status="authorised").first(),
        timeout=60,
        interval=0.1,
        what=lambda: f"order {order.id}'s payment to be authorised\n{logs()}",
    )


def _authorise_delivery(order) -> Delivery:
    confirmed = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    return Delivery.objects.get(event=confirmed, handler=AUTHORISE_HANDLER)


def test_tok_flaky_counts_the_calls_of_every_process_together(live_outbox):
    # given an order paid with tok_flaky, whose key this process has called once already (and timed out)
    order = place_order(token="tok_flaky")
    key = authorisation_key(order.id)
    with pytest.raises(GatewayUnavailable):
        gateway().authorise(
            token="tok_flaky", amount=Money(amount=order.total_amount, currency=order.currency), idempotency_key=key
        )
    # when the order is confirmed and a real worker authorises it, its failed attempt rolled back
    order_confirm(order_id=order.id)
    payment = _authorised(order, logs=live_outbox.logs)
    # then the worker's calls added up with ours: it timed out once (call 2), and was authorised on call 3
    assert sandbox.calls(idempotency_key=key) == 3
    delivery = _authorise_delivery(order)  # done in the transaction that authorised the payment
    assert (delivery.status, delivery.attempts) == ("done", 2)
    [charge] = sandbox.charges(idempotency_keys=[key])
    assert (charge.status, charge.reference) == ("authorised", payment.provider_reference)
    wait_until_settled(order, live_outbox=live_outbox)  # the session's workers are idle before the tables are flushed


@pytest.fixture
def dying_payments_worker(no_live_outbox):
    """A relay, and a worker whose process dies right after the provider first charges a key."""
    relay = start_relay(OUTBOX_LEASE_SECONDS="5")
    worker = start_worker(OUTBOX_LEASE_SECONDS="5", DJANGO_SETTINGS_MODULE="tests.payments.dying_gateway_settings")
    yield lambda: f"{worker.output()[-4000:]}\n{relay.output()[-2000:]}"
    worker.stop()
    relay.stop()


def test_a_worker_that_died_after_the_provider_charged_is_retried_without_a_second_charge(dying_payments_worker):
    # given a confirmed order, whose first authorisation attempt dies (with its transaction) once the provider charged
    order = place_order(token="tok_visa", confirm=True)
    key = authorisation_key(order.id)
    # when the outbox sends the delivery round again
    payment = _authorised(order, logs=dying_payments_worker)
    # then the retry found the provider's charge: two calls, one charge, and it is the payment's
    assert sandbox.calls(idempotency_key=key) == 2
    assert sandbox.charge_counts(idempotency_keys=[key]) == {"authorised": 1}
    [charge] = sandbox.charges(idempotency_keys=[key])
    assert payment.provider_reference == charge.reference
    assert (
        OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="payments.PaymentProcessed").count() == 1
    )
