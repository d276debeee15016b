"""What orders tells other contexts about a customer's orders: the one module of orders they may read.

The customers context asks it before forgetting someone: which of their orders exist, and which are still
in flight (their address and email are needed until those ship or are cancelled). Notifications asks it for
what an order holds (its lines, total and date) when the event it mails about does not carry them.
"""

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from outbox.events import Money

from .events import OrderLine
from .models import Order


@dataclass(frozen=True)
class OrderContents:
    """What an order is for, no personal data: its lines as the events carry them, its total, when it was placed."""

    lines: tuple[OrderLine, ...]
    total: Money
    placed_at: dt.datetime


def customer_order_ids(*, customer_id: int) -> tuple[list[UUID], list[UUID]]:
    """The customer's orders: all of them, and those in flight (confirmed, payment, stock or shipping still to come)."""
    rows = list(Order.objects.filter(customer_id=customer_id).order_by("created_at").values_list("id", "status"))
    in_flight = (Order.Status.CONFIRMED, Order.Status.READY_TO_SHIP)
    return [order_id for order_id, _ in rows], [order_id for order_id, status in rows if status in in_flight]


def order_contents(*, order_id: UUID) -> OrderContents | None:
    """The order's lines, total and placing time; None when there is no such order."""
    order = Order.objects.filter(id=order_id).prefetch_related("lines").first()
    if order is None:
        return None
    return OrderContents(lines=order_lines(order), total=order_total(order), placed_at=order.created_at)


def order_lines(order: Order) -> tuple[OrderLine, ...]:
    """The order's lines as its events carry them (orders' services put them in OrderConfirmed and others)."""
    return tuple(
        OrderLine(
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=Money(amount=line.unit_price, currency=order.currency),
        )
        for line in order.lines.all()
    )


def order_total(order: Order) -> Money:
    return Money(amount=order.total_amount, currency=order.currency)
