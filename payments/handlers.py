"""The payments context's subscriptions: charge confirmed orders, refund cancelled ones."""

from orders.events import OrderCancelled, OrderConfirmed
from outbox.events import Envelope
from outbox.subscriptions import Subscription

from .gateway import GatewayRefused
from .services import payment_authorise, payment_refund_for_cancelled_order

AUTHORISE_HANDLER = "payments.authorise_payment"


def authorise_payment(event: OrderConfirmed, envelope: Envelope) -> None:
    payment_authorise(
        order_id=event.order_id,
        amount=event.total,
        payment_token=event.payment_token,
        # The outbox will not retry after this attempt: a gateway still down now is a failed payment.
        last_attempt=envelope.is_last_attempt,
    )


def refund_payment(event: OrderCancelled, envelope: Envelope) -> None:
    payment_refund_for_cancelled_order(order_id=event.order_id, amount=event.total)


# A request the provider refused will never succeed as it is: dead at once, for staff to look at.
# GatewayUnavailable is transient (the default). No circuit breaker on authorisation: while one is
# open no attempt counts, so `last_attempt` would never come and a payment the provider keeps
# failing for one order (the sandbox's tok_unavailable) would wait forever instead of failing.
SUBSCRIPTIONS = [
    Subscription(
        OrderConfirmed,
        authorise_payment,
        max_attempts=5,
        backoff_base=0.2,
        backoff_cap=5,
        permanent=(GatewayRefused,),
    ),
    Subscription(OrderCancelled, refund_payment, permanent=(GatewayRefused,)),
]
