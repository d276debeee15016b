"""The notifications context's subscriptions: mail the customer about their order."""

from customers.events import CustomerForgotten
from orders.events import OrderCancelled, OrderConfirmed, OrderShipped
from outbox.events import Envelope
from outbox.subscriptions import Subscription

from . import messages
from .models import Notification
from .services import notification_create, notifications_forget_customer

Kind = Notification.Kind


def mail_order_confirmed(event: OrderConfirmed, envelope: Envelope) -> None:
    _send(envelope, Kind.ORDER_CONFIRMED, event.order_id, event.customer_email, messages.order_confirmed(event))


def mail_order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
    _send(envelope, Kind.ORDER_CANCELLED, event.order_id, event.customer_email, messages.order_cancelled(event))


def mail_order_shipped(event: OrderShipped, envelope: Envelope) -> None:
    _send(envelope, Kind.ORDER_SHIPPED, event.order_id, event.customer_email, messages.order_shipped(event))


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
