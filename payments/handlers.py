"""The payments context's subscriptions: charge confirmed orders, refund cancelled ones."""

from orders.events import OrderCancelled, OrderConfirmed
from outbox.events import Envelope
from outbox.models import Delivery
from outbox.subscriptions import Subscription, subscriptions

from .services import payment_authorise, payment_refund_for_cancelled_order

AUTHORISE_HANDLER = "payments.authorise_payment"


def authorise_payment(event: OrderConfirmed, envelope: Envelope) -> None:
    payment_authorise(
        order_id=event.order_id,
        amount=event.total,
        payment_token=event.payment_token,
        idempotency_key=str(envelope.event_id),  # a retried delivery never charges twice
        last_attempt=_on_last_attempt(envelope, AUTHORISE_HANDLER),
    )


def refund_payment(event: OrderCancelled, envelope: Envelope) -> None:
    payment_refund_for_cancelled_order(
        order_id=event.order_id, amount=event.total, idempotency_key=str(envelope.event_id)
    )


def _on_last_attempt(envelope: Envelope, handler: str) -> bool:
    """True when the outbox will not retry this delivery again if it fails now.

    The envelope does not say which attempt this is, so ask the delivery row
    (locked by the runner in this same transaction).
    """
    subscription = subscriptions.get(handler)
    attempts = (
        Delivery.objects.filter(event__event_id=envelope.event_id, handler=handler)
        .values_list("attempts", flat=True)
        .first()
    )
    return subscription is not None and attempts is not None and attempts >= subscription.setting("MAX_ATTEMPTS")


SUBSCRIPTIONS = [
    Subscription(OrderConfirmed, authorise_payment, max_attempts=5, backoff_base=0.2, backoff_cap=5),
    Subscription(OrderCancelled, refund_payment, backoff_base=0.5),
]
