"""The payments context's use cases: the only code that changes payments.

Locking: the order's payment row is locked (``FOR UPDATE``) before the
gateway is called, so an authorisation and a refund of one order never run
side by side and the payment's events are written in order.

Idempotency keys are derived from the order, not from the delivered event:
whichever attempt, delivery or copy of an event asks, the provider sees one
authorisation key per order, so a retry finds the charge an attempt that
rolled back made, and a cancellation can void it.
"""

from uuid import UUID

from django.db import transaction

from config.db import locked_or_created
from outbox.events import Money
from outbox.publishing import publish

from .events import PaymentFailed, PaymentProcessed, PaymentRefunded
from .gateway import GatewayUnavailable, gateway
from .models import Payment

Status = Payment.Status
# Our side shows no charge, but an attempt that rolled back (or a call that timed out) may have made one.
NOTHING_TAKEN = {Status.PENDING, Status.VOIDED, Status.FAILED}


def authorisation_key(order_id: UUID) -> str:
    """The idempotency key of the order's authorisation (and of its void) at the provider."""
    return f"authorise-{order_id}"


def refund_key(order_id: UUID) -> str:
    return f"refund-{order_id}"


@transaction.atomic
def payment_authorise(*, order_id: UUID, amount: Money, payment_token: str, last_attempt: bool = False) -> Payment:
    """Authorise the order total once. A decline is an answer (PaymentFailed), not an error.

    A transient gateway error is raised, so that the outbox retries with the
    same idempotency key, except on the ``last_attempt``, where it becomes
    PaymentFailed: the order is then cancelled instead of waiting forever.
    """
    payment = _payment_for_update(order_id, amount, if_new=Status.PENDING)
    if payment.status != Status.PENDING:
        return payment  # decided already, or voided by an earlier cancellation
    payment.idempotency_key = authorisation_key(order_id)
    try:
        answer = gateway().authorise(token=payment_token, amount=amount, idempotency_key=payment.idempotency_key)
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
def payment_refund_for_cancelled_order(*, order_id: UUID, amount: Money) -> Payment:
    """Give back what was taken for a cancelled order; before any charge of ours, make sure none happens.

    With no authorised charge on our side, the provider is still asked to void
    any authorisation under the order's key: an attempt that charged and then
    rolled back left one there.
    """
    payment = _payment_for_update(order_id, amount, if_new=Status.VOIDED)
    if payment.status == Status.AUTHORISED:
        return _refund(payment)
    if payment.status in NOTHING_TAKEN:
        released = gateway().void(idempotency_key=authorisation_key(order_id))
        payment.void(
            charge_reference=released.charge_reference if released else "",
            void_reference=released.reference if released else "",
        )
        payment.save(update_fields=["status", "provider_reference", "void_reference", "updated_at"])
    return payment


def _refund(payment: Payment) -> Payment:
    receipt = gateway().refund(
        reference=payment.provider_reference, amount=_money(payment), idempotency_key=refund_key(payment.order_id)
    )
    payment.refund(reference=receipt.reference)
    payment.save()
    publish(
        PaymentRefunded(
            payment_id=payment.id,
            order_id=payment.order_id,
            amount=_money(payment),
            provider_reference=payment.provider_reference,
            refund_reference=receipt.reference,
        )
    )
    return payment


def _payment_for_update(order_id: UUID, amount: Money, *, if_new: str) -> Payment:
    """The order's payment, locked; created with status ``if_new`` when there is none: one per order."""
    return locked_or_created(
        Payment, order_id=order_id, defaults={"status": if_new, "amount": amount.amount, "currency": amount.currency}
    )


def _failed(payment: Payment) -> Payment:
    payment.save()
    publish(PaymentFailed(payment_id=payment.id, order_id=payment.order_id, reason=payment.failure_reason))
    return payment


def _money(payment: Payment) -> Money:
    return Money(amount=payment.amount, currency=payment.currency)
