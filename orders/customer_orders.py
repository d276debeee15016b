"""What orders tells other contexts about a customer's orders: the one module of orders they may read.

The customers context asks it before forgetting someone: which of their orders exist, and which are still
in flight (their address and email are needed until those ship or are cancelled).
"""

from uuid import UUID

from .models import Order


def customer_order_ids(*, customer_id: int) -> tuple[list[UUID], list[UUID]]:
    """The customer's orders: all of them, and those in flight (confirmed, payment, stock or shipping still to come)."""
    rows = list(Order.objects.filter(customer_id=customer_id).order_by("created_at").values_list("id", "status"))
    in_flight = (Order.Status.CONFIRMED, Order.Status.READY_TO_SHIP)
    return [order_id for order_id, _ in rows], [order_id for order_id, status in rows if status in in_flight]
