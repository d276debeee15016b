"""The payments context's use cases: the only code that changes payments.

Locking: the order's payment row is locked (``FOR UPDATE``) before the
gateway is called, so an authorisation and a refund of one order never run
side by side and the payment's events are written in order.
"""

from uuid import UUID

from django.db import transaction

from outbox.events import Money
from outbox.publishing import publish

from .events import PaymentFailed, PaymentProcessed, PaymentRefunded
from .gateway import GatewayUnavailable, gateway
from .models import Payment

Status = Payment.Status


@transaction.atomic
def payment_authorise(
    *, order_id: UUID, amount: Money, payment_token: str, idempotency_key: str, last_attempt: bool = False
) -> Payment:
    """Authorise the order total once. A decline is an answer (PaymentFailed), not an error.

    A transient gateway error is raised, so that the outbox retries with the
    same idempotency key, except on the ``last_attempt``, where it becomes
    PaymentFailed: the order is then cancelled instead of waiting forever.
    """
    payment = _payment_for_update(order_id, amount, if_new=Status.PENDING)
    if payment.status != Status.PENDING:
        return payment  # decided already, or voided by an earlier cancellation
    payment.idempotency_key = idempotency_key
    try:
        answer = gateway().authorise(token=payment_token, amount=amount, idempotency_key=idempotency_key)
    except GatewayUnavailable as exc:
        if not last_attempt:
            raise
        payment.give_up(reason=f"the payment provider stayed unavailable ({exc})")
        return _failed(payment)
    if not answer.approved:
        payment.decline(reason=answer.decline_reason, reference=answer.reference)
        return _failed(payment)
    payment.authorise(reference=answer.reference)
    payment.save()
    publish(
        PaymentProcessed(
            payment_id=payment.id, order_id=order_id, amount=_money(payment), provider_reference=answer.reference
        )
    )
    return payment


@transaction.atomic
def payment_refund_for_cancelled_order(*, order_id: UUID, amount: Money, idempotency_key: str) -> Payment:
    """Give back what was taken for a cancelled order; before any charge, make sure none happens."""
    payment = _payment_for_update(order_id, amount, if_new=Status.VOIDED)
    if payment.status != Status.AUTHORISED:
        return payment
    receipt = gateway().refund(
        reference=payment.provider_reference, amount=_money(payment), idempotency_key=idempotency_key
    )
    payment.refund(reference=receipt.reference)
    payment.save()
    publish(
        PaymentRefunded(
            payment_id=payment.id,
            order_id=order_id,
            amount=_money(payment),
            provider_reference=payment.provider_reference,
            refund_reference=receipt.reference,
        )
    )
    return payment


def _payment_for_update(order_id: UUID, amount: Money, *, if_new: str) -> Payment:
    """The order's payment, locked; created with status ``if_new`` when there is none.

    A concurrent creator of the same order's row waits on the unique index,
    then finds ours, so exactly one payment exists per order.
    """
    payment, created = Payment.objects.get_or_create(
        order_id=order_id, defaults={"status": if_new, "amount": amount.amount, "currency": amount.currency}
    )
    return payment if created else Payment.objects.select_for_update().get(pk=payment.pk)


def _failed(payment: Payment) -> Payment:
    payment.save()
    publish(PaymentFailed(payment_id=payment.id, order_id=payment.order_id, reason=payment.failure_reason))
    return payment


def _money(payment: Payment) -> Money:
    return Money(amount=payment.amount, currency=payment.currency)
