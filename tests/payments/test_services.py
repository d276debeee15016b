import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from outbox.events import Money
from outbox.models import OutboxEvent
from payments import sandbox
from payments.gateway import GatewayUnavailable
from payments.models import Payment
from payments.services import authorisation_key, payment_authorise, payment_refund_for_cancelled_order

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])

TOTAL = Money(amount=Decimal("42.60"), currency="EUR")


class WorkerDied(Exception):
    """Stands for whatever ends a handler's transaction after the provider answered."""


def _published(order_id) -> list[tuple[str, dict]]:
    rows = OutboxEvent.objects.filter(type__startswith="payments.").order_by("id")
    return [(r.type, r.payload) for r in rows if r.payload["order_id"] == str(order_id)]


def _authorise(order_id, token="tok_visa", **kwargs) -> Payment:
    return payment_authorise(order_id=order_id, amount=TOTAL, payment_token=token, **kwargs)


def _refund(order_id) -> Payment:
    return payment_refund_for_cancelled_order(order_id=order_id, amount=TOTAL)


def _authorise_then_roll_back(order_id, token="tok_visa") -> None:
    """An attempt whose transaction rolled back after the provider answered (a crash before our commit)."""
    with pytest.raises(WorkerDied), transaction.atomic():
        _authorise(order_id, token=token)
        raise WorkerDied


def _at_provider(order_id) -> dict[str, int]:
    return dict(sandbox.charge_counts(idempotency_keys=[authorisation_key(order_id)]))


def test_a_good_card_is_authorised_under_the_orders_key_and_publishes_payment_processed():
    # given
    order_id = uuid.uuid4()
    # when
    payment = _authorise(order_id)
    # then
    assert (payment.status, payment.amount, payment.currency) == ("authorised", Decimal("42.60"), "EUR")
    assert payment.idempotency_key == authorisation_key(order_id) == f"authorise-{order_id}"
    [(type_, payload)] = _published(order_id)
    assert type_ == "payments.PaymentProcessed"
    assert payload["amount"] == {"amount": "42.60", "currency": "EUR"}
    assert payload["provider_reference"] == payment.provider_reference
    assert _at_provider(order_id) == {"authorised": 1}


def test_a_decline_is_an_answer_not_an_error_and_publishes_payment_failed_at_once():
    order_id = uuid.uuid4()
    payment = _authorise(order_id, token="tok_decline")
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
        _authorise(order_id, token="tok_flaky")
    assert not Payment.objects.filter(order_id=order_id).exists()
    assert _published(order_id) == []


def test_a_transient_error_on_the_last_attempt_becomes_payment_failed():
    order_id = uuid.uuid4()
    payment = _authorise(order_id, token="tok_unavailable", last_attempt=True)
    assert payment.status == "failed"
    [(type_, payload)] = _published(order_id)
    assert type_ == "payments.PaymentFailed"
    assert "unavailable" in payload["reason"]


def test_authorising_one_order_twice_charges_once():
    # given
    order_id = uuid.uuid4()
    # when
    _authorise(order_id)
    _authorise(order_id)
    # then
    assert _at_provider(order_id) == {"authorised": 1}
    assert len(_published(order_id)) == 1


def test_the_provider_charged_then_our_transaction_rolled_back_and_the_retry_does_not_charge_again():
    # given an attempt that the provider authorised, and whose transaction then rolled back
    order_id = uuid.uuid4()
    _authorise_then_roll_back(order_id)
    assert not Payment.objects.filter(order_id=order_id).exists()
    [charge] = sandbox.charges(idempotency_keys=[authorisation_key(order_id)])
    # when the outbox retries
    payment = _authorise(order_id)
    # then the retry found that charge: one charge at the provider, and it is ours
    assert (payment.status, payment.provider_reference) == ("authorised", charge.reference)
    assert _at_provider(order_id) == {"authorised": 1}
    assert sandbox.calls(idempotency_key=authorisation_key(order_id)) == 2
    assert [t for t, _ in _published(order_id)] == ["payments.PaymentProcessed"]


def test_a_flaky_card_recovers_although_each_failed_attempt_rolled_back():
    # given two attempts that timed out at the provider, each rolled back by the outbox
    order_id = uuid.uuid4()
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            _authorise(order_id, token="tok_flaky")
    # when the third attempt runs
    payment = _authorise(order_id, token="tok_flaky")
    # then the provider counted the first two: it authorises
    assert payment.status == "authorised"
    assert sandbox.calls(idempotency_key=authorisation_key(order_id)) == 3


def test_a_cancelled_order_is_refunded_once():
    # given
    order_id = uuid.uuid4()
    _authorise(order_id)
    # when
    _refund(order_id)
    payment = _refund(order_id)
    # then
    assert payment.status == "refunded"
    assert [t for t, _ in _published(order_id)] == ["payments.PaymentProcessed", "payments.PaymentRefunded"]
    assert _at_provider(order_id) == {"refunded": 1}


def test_a_refund_whose_transaction_rolled_back_is_not_refunded_twice_by_its_retry():
    # given a paid order whose first refund attempt rolled back after the provider refunded
    order_id = uuid.uuid4()
    _authorise(order_id)
    with pytest.raises(WorkerDied), transaction.atomic():
        first = _refund(order_id)
        raise WorkerDied
    assert Payment.objects.get(order_id=order_id).status == "authorised"
    # when the refund is retried
    payment = _refund(order_id)
    # then it got the provider's first refund
    assert (payment.status, payment.refund_reference) == ("refunded", first.refund_reference)
    assert _at_provider(order_id) == {"refunded": 1}


def test_a_cancellation_voids_a_charge_made_by_an_attempt_that_rolled_back():
    # given the provider authorised an attempt whose transaction then rolled back: our side shows no payment
    order_id = uuid.uuid4()
    _authorise_then_roll_back(order_id)
    [charge] = sandbox.charges(idempotency_keys=[authorisation_key(order_id)])
    # when the order is cancelled
    payment = _refund(order_id)
    # then the provider released that authorisation, and the payment says so
    assert payment.status == "voided"
    assert payment.provider_reference == charge.reference
    assert payment.void_reference.startswith("vo_")
    assert _at_provider(order_id) == {"voided": 1}
    # and a late retry of the authorisation charges nothing
    assert _authorise(order_id).status == "voided"
    assert sandbox.calls(idempotency_key=authorisation_key(order_id)) == 1
    assert _published(order_id) == []


def test_a_cancellation_after_the_gateway_gave_up_voids_what_a_timed_out_call_may_have_held():
    # given an attempt that was authorised and rolled back, then a last attempt that found the gateway down
    order_id = uuid.uuid4()
    _authorise_then_roll_back(order_id)
    failed = Payment.objects.create(order_id=order_id, amount=TOTAL.amount, currency="EUR", status="failed")
    # when the order is cancelled
    payment = _refund(order_id)
    # then the payment stays failed, and the provider holds nothing
    assert (payment.pk, payment.status) == (failed.pk, "failed")
    assert payment.void_reference
    assert _at_provider(order_id) == {"voided": 1}


def test_a_cancellation_heard_before_the_confirmation_means_no_charge_at_all():
    # given payments learns of the cancellation first
    order_id = uuid.uuid4()
    _refund(order_id)
    # when the confirmation arrives late
    payment = _authorise(order_id)
    # then
    assert (payment.status, payment.void_reference) == ("voided", "")
    assert _at_provider(order_id) == {}
    assert sandbox.calls(idempotency_key=authorisation_key(order_id)) == 0
    assert _published(order_id) == []


def test_a_declined_payment_asks_the_provider_for_nothing_on_cancellation():
    order_id = uuid.uuid4()
    _authorise(order_id, token="tok_decline")
    payment = _refund(order_id)
    assert (payment.status, payment.void_reference) == ("declined", "")
    assert _at_provider(order_id) == {"declined": 1}
