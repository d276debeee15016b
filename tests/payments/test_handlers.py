"""The payments handlers, run in-process by the outbox's own runner."""

import dataclasses

import pytest

from orders.services import order_cancel
from outbox.events import registry
from outbox.models import Delivery, OutboxEvent
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from payments import sandbox
from payments.gateway import GatewayUnavailable
from payments.handlers import AUTHORISE_HANDLER, authorise_payment
from payments.models import Payment
from payments.services import authorisation_key
from tests.factories import envelope_for, handle, make_product, place_order

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])


def _delivery(order, type_: str, handler: str) -> Delivery:
    fan_out(batch_size=1000)
    event = OutboxEvent.objects.get(correlation_id=order.correlation_id, type=type_)
    return Delivery.objects.get(event=event, handler=handler)


def _published(order) -> list[str]:
    rows = OutboxEvent.objects.filter(correlation_id=order.correlation_id, type__startswith="payments.")
    return list(rows.order_by("id").values_list("type", flat=True))


def test_the_idempotency_key_is_the_orders_not_the_delivered_events():
    # given
    order = place_order(confirm=True)
    delivery = _delivery(order, "orders.OrderConfirmed", AUTHORISE_HANDLER)
    # when
    report = run_deliveries([delivery.id])
    # then
    assert report.done == [delivery.id]
    payment = Payment.objects.get(order_id=order.id)
    assert (payment.status, payment.amount) == ("authorised", order.total_amount)
    assert payment.idempotency_key == authorisation_key(order.id) != str(delivery.event.event_id)
    assert sandbox.charge_counts(idempotency_keys=[payment.idempotency_key]) == {"authorised": 1}
    assert _published(order) == ["payments.PaymentProcessed"]


def test_a_transient_failure_before_the_last_attempt_is_left_to_the_outbox_to_retry():
    # given a gateway that is down, on the first attempt
    order = place_order(token="tok_unavailable", confirm=True)
    delivery = _delivery(order, "orders.OrderConfirmed", AUTHORISE_HANDLER)
    # when
    report = run_deliveries([delivery.id])
    # then
    assert report.failed == [delivery.id]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error.split(":")[0]) == ("pending", "GatewayUnavailable")
    assert _published(order) == []


def test_a_transient_failure_on_the_last_attempt_becomes_payment_failed():
    # given a gateway that is down, on the fifth and last attempt
    order = place_order(token="tok_unavailable", confirm=True)
    delivery = _delivery(order, "orders.OrderConfirmed", AUTHORISE_HANDLER)
    Delivery.objects.filter(pk=delivery.pk).update(attempts=5)
    # when
    report = run_deliveries([delivery.id])
    # then
    assert report.done == [delivery.id]
    assert Payment.objects.get(order_id=order.id).status == "failed"
    assert _published(order) == ["payments.PaymentFailed"]


def test_order_cancelled_refunds_what_was_taken():
    # given a paid order, then cancelled
    order = place_order(lines=[(make_product(price="7.00"), 2)], confirm=True)
    run_deliveries([_delivery(order, "orders.OrderConfirmed", AUTHORISE_HANDLER).id])
    order_cancel(order_id=order.id, reason="no", by_user_id=order.customer_id)
    # when
    run_deliveries([_delivery(order, "orders.OrderCancelled", "payments.refund_payment").id])
    # then
    assert Payment.objects.get(order_id=order.id).status == "refunded"
    assert _published(order) == ["payments.PaymentProcessed", "payments.PaymentRefunded"]
    assert sandbox.charge_counts(idempotency_keys=[authorisation_key(order.id)]) == {"refunded": 1}


def _confirmed(order):
    row = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    return registry.decode(row.type, row.version, row.payload)


def test_the_handler_learns_the_last_attempt_from_the_envelope_alone():
    # given a gateway that is down, and an envelope saying this is attempt 5 of 5 (no delivery row says so)
    order = place_order(token="tok_unavailable", confirm=True)
    event = _confirmed(order)
    envelope = dataclasses.replace(envelope_for(event), attempt=5, max_attempts=5)
    # when
    handle(authorise_payment, event, envelope)
    # then it gives up with a business outcome instead of raising
    deliveries = Delivery.objects.filter(event__correlation_id=order.correlation_id)
    assert set(deliveries.values_list("attempts", flat=True)) == {0}
    assert Payment.objects.get(order_id=order.id).status == "failed"
    assert _payment_events_for(order) == ["payments.PaymentFailed"]


def test_the_handler_raises_for_a_retry_while_attempts_remain():
    # given attempt 4 of 5
    order = place_order(token="tok_unavailable", confirm=True)
    event = _confirmed(order)
    envelope = dataclasses.replace(envelope_for(event), attempt=4, max_attempts=5)
    # when / then
    with pytest.raises(GatewayUnavailable):
        handle(authorise_payment, event, envelope)
    assert _payment_events_for(order) == []


def _payment_events_for(order) -> list[str]:
    """(A handler run by hand has no cause to inherit a correlation from: find its events by order.)"""
    rows = OutboxEvent.objects.filter(type__startswith="payments.", payload__order_id=str(order.id)).order_by("id")
    return list(rows.values_list("type", flat=True))
