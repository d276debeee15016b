"""What each customer email says. Pure functions: an event in, a subject and a body out."""

from dataclasses import dataclass
from uuid import UUID

from orders.events import OrderCancelled, OrderConfirmed, OrderShipped
from outbox.events import Money


@dataclass(frozen=True)
class Message:
    subject: str
    body: str


def order_confirmed(event: OrderConfirmed) -> Message:
    lines = "\n".join(
        f"  {line.quantity} x {line.name} ({line.sku}) at {_money(line.unit_price)}" for line in event.lines
    )
    return Message(
        subject=f"Your order {_short(event.order_id)} is confirmed",
        body=(
            f"Thank you for your order {event.order_id}.\n\n{lines}\n\nTotal: {_money(event.total)}\n\n"
            "We are taking payment and reserving your items; we will write again when it ships."
        ),
    )


def order_cancelled(event: OrderCancelled) -> Message:
    refund = "Any payment taken is being refunded." if event.refund_due else "You have not been charged."
    return Message(
        subject=f"Your order {_short(event.order_id)} is cancelled",
        body=f"Your order {event.order_id} was cancelled.\n\nReason: {event.reason}\n\n{refund}",
    )


def order_shipped(event: OrderShipped) -> Message:
    return Message(
        subject=f"Your order {_short(event.order_id)} has shipped",
        body=(
            f"Your order {event.order_id} is on its way with {event.carrier}.\n\n"
            f"Tracking number: {event.tracking_number}\n"
            f"Estimated delivery: {event.estimated_delivery:%A %d %B %Y}"
        ),
    )


def message_id(*, kind: str, event_id: UUID, domain: str) -> str:
    """The one Message-ID of (event, kind): a message sent again is the same message to a mail system."""
    return f"<{kind}.{event_id}@{domain}>"


def _money(money: Money) -> str:
    return f"{money.amount:.2f} {money.currency}"


def _short(order_id) -> str:
    return str(order_id)[:8]
