"""Read-side queries of the orders context."""

from uuid import UUID

from django.db.models import QuerySet

from outbox.models import OutboxEvent

from .models import Order


def order_get(*, order_id: UUID) -> Order | None:
    return Order.objects.select_related("saga").prefetch_related("lines").filter(pk=order_id).first()


def orders_of_customer(*, customer_id: int) -> QuerySet[Order]:
    return Order.objects.filter(customer_id=customer_id).prefetch_related("lines").order_by("-created_at")


def order_timeline(*, order_id: UUID) -> QuerySet[OutboxEvent]:
    """Every event of the order's life, from every context, in the order they were written.

    They share the order's correlation id (see ``orders.services``).
    """
    correlation_id = Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()
    return OutboxEvent.objects.filter(correlation_id=correlation_id).order_by("id")
