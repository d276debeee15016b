import uuid
from decimal import Decimal

import pytest

from outbox.events import Money
from outbox.models import OutboxEvent
from payments.gateway import GatewayUnavailable
from payments.models import Payment, SandboxCharge
from payments.services import payment_authorise, payment_refund_for_cancelled_order

pytestmark = pytest.mark.django_db

TOTAL = Money(amount=Decimal("42.60"), currency="EUR")


def _published(order_id) -> list[tuple[str, dict]]:
    rows = OutboxEvent.objects.filter(type__startswith="payments.").order_by("id")
    return [(r.type, r.payload) for r in rows if r.payload["order_id"] == str(order_id)]


def _authorise(order_id, token="tok_visa", key="k", **kwargs) -> Payment:
    return payment_authorise(order_id=order_id, amount=TOTAL, payment_token=token, idempotency_key=key, **kwargs)


def test_a_good_card_is_authorised_and_publishes_payment_processed():
    # given
    order_id = uuid.uuid4()
    # when
    payment = _authorise(order_id, key=str(uuid.uuid4()))
    # then
    assert (payment.status, payment.amount, payment.currency) == ("authorised", Decimal("42.60"), "EUR")
    [(type_, payload)] = _published(order_id)
    assert type_ == "payments.PaymentProcessed"
    assert payload["amount"] == {"amount": "42.60", "currency": "EUR"}
    assert payload["provider_reference"] == payment.provider_reference


def test_a_decline_is_an_answer_not_an_error_and_publishes_payment_failed_at_once():
    order_id = uuid.uuid4()
    payment = _authorise(order_id, token="tok_decline", key=str(uuid.uuid4()))
    assert (payment.status, payment.failure_reason) == ("declined", "card declined")
    assert _published(order_id) == [
        (
            "payments.PaymentFailed",
            {"payment_id": str(payment.id), "order_id": str(order_id), "reason": "card declined"},
        )
    ]


def test_a_transient_error_is_raised_so_the_outbox_retries_and_nothing_is_written():
    order_id = uuid.uuid4()
    with pytest.raises(GatewayUnavailable):
        _authorise(order_id, token="tok_flaky", key=str(uuid.uuid4()))
    assert not Payment.objects.filter(order_id=order_id).exists()
    assert _published(order_id) == []


def test_a_transient_error_on_the_last_attempt_becomes_payment_failed():
    order_id = uuid.uuid4()
    payment = _authorise(order_id, token="tok_unavailable", key=str(uuid.uuid4()), last_attempt=True)
    assert payment.status == "failed"
    [(type_, payload)] = _published(order_id)
    assert type_ == "payments.PaymentFailed"
    assert "unavailable" in payload["reason"]


def test_authorising_one_order_twice_charges_once():
    # given
    order_id, key = uuid.uuid4(), str(uuid.uuid4())
    # when
    _authorise(order_id, key=key)
    _authorise(order_id, key=key)
    # then
    assert SandboxCharge.objects.filter(idempotency_key=key).count() == 1
    assert len(_published(order_id)) == 1


def test_a_cancelled_order_is_refunded_once():
    # given
    order_id = uuid.uuid4()
    _authorise(order_id, key=str(uuid.uuid4()))
    # when
    payment_refund_for_cancelled_order(order_id=order_id, amount=TOTAL, idempotency_key="c1")
    payment = payment_refund_for_cancelled_order(order_id=order_id, amount=TOTAL, idempotency_key="c1")
    # then
    assert payment.status == "refunded"
    assert [t for t, _ in _published(order_id)] == ["payments.PaymentProcessed", "payments.PaymentRefunded"]


def test_a_cancellation_heard_before_the_confirmation_means_no_charge_at_all():
    # given payments learns of the cancellation first
    order_id, key = uuid.uuid4(), str(uuid.uuid4())
    payment_refund_for_cancelled_order(order_id=order_id, amount=TOTAL, idempotency_key="c2")
    # when the confirmation arrives late
    payment = _authorise(order_id, key=key)
    # then
    assert payment.status == "voided"
    assert not SandboxCharge.objects.filter(idempotency_key=key).exists()
    assert _published(order_id) == []
