"""Read-side queries of the payments context."""

from uuid import UUID

from .models import Payment


def payment_for_order(*, order_id: UUID) -> Payment | None:
    return Payment.objects.filter(order_id=order_id).first()
