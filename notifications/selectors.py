"""Read-side queries of the notifications context."""

from uuid import UUID

from django.db.models import QuerySet

from .models import Notification


def notifications_for_order(*, order_id: UUID) -> QuerySet[Notification]:
    """The order's notifications in the order they were decided (a pending one has no ``sent_at`` yet)."""
    return Notification.objects.filter(order_id=order_id).order_by("created_at")
