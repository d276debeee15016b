"""The notifications context's subscriptions: mail the customer about their order."""

from customers.events import CustomerForgotten
from orders import customer_orders
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderShipped
from outbox.events import Envelope, Money
from outbox.subscriptions import Subscription

from . import messages
from .models import Notification
from .services import notification_create, notifications_forget_customer

Kind = Notification.Kind


def mail_order_confirmed(event: OrderConfirmed, envelope: Envelope) -> None:
    lines = event.lines or _contents_of(event.order_id)[0]  # a v1 event carries no lines
    message = messages.order_confirmed(event, confirmed_at=envelope.occurred_at, lines=lines)
    _send(envelope, Kind.ORDER_CONFIRMED, event.order_id, event.customer_email, message)


def mail_order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
    lines, _ = _contents_of(event.order_id)
    message = messages.order_cancelled(event, cancelled_at=envelope.occurred_at, lines=lines)
    _send(envelope, Kind.ORDER_CANCELLED, event.order_id, event.customer_email, message)


def mail_order_shipped(event: OrderShipped, envelope: Envelope) -> None:
    lines, total = _contents_of(event.order_id)
    message = messages.order_shipped(event, shipped_at=envelope.occurred_at, lines=lines, total=total)
    _send(envelope, Kind.ORDER_SHIPPED, event.order_id, event.customer_email, message)


def _contents_of(order_id) -> tuple[tuple[OrderLine, ...], Money | None]:
    """The order's lines and total, read from orders (its published read module); none if there is no such order."""
    contents = customer_orders.order_contents(order_id=order_id)
    return (contents.lines, contents.total) if contents is not None else ((), None)


def _send(envelope: Envelope, kind: str, order_id, recipient: str, message: messages.Message) -> None:
    notification_create(event_id=envelope.event_id, kind=kind, order_id=order_id, recipient=recipient, message=message)


def forget_customer(event: CustomerForgotten, envelope: Envelope) -> None:
    notifications_forget_customer(order_ids=list(event.order_ids))


SUBSCRIPTIONS = [
    Subscription(OrderConfirmed, mail_order_confirmed, backoff_base=1.0),
    Subscription(OrderCancelled, mail_order_cancelled, backoff_base=1.0),
    Subscription(OrderShipped, mail_order_shipped, backoff_base=1.0),
    Subscription(CustomerForgotten, forget_customer),
]
