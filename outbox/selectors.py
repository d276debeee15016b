"""Read-side queries over the outbox: status per handler, the dead-letter queue."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from .models import Delivery
from .subscriptions import subscriptions

Status = Delivery.Status


@dataclass(frozen=True)
class HandlerStatus:
    handler: str
    pending: int
    dispatched: int
    dead: int
    oldest_pending_age: timedelta | None


def handler_statuses() -> list[HandlerStatus]:
    """Unfinished and dead work per handler; reads only the partial index of unfinished rows."""
    rows = (
        Delivery.objects.exclude(status=Status.DONE)
        .values("handler")
        .annotate(
            pending=Count("id", filter=Q(status=Status.PENDING)),
            dispatched=Count("id", filter=Q(status=Status.DISPATCHED)),
            dead=Count("id", filter=Q(status=Status.DEAD, resolved_at__isnull=True)),
            oldest=Min("created_at", filter=Q(status__in=Delivery.UNFINISHED)),
        )
    )
    now = timezone.now()
    found = {
        row["handler"]: HandlerStatus(
            row["handler"],
            row["pending"],
            row["dispatched"],
            row["dead"],
            now - row["oldest"] if row["oldest"] else None,
        )
        for row in rows
    }
    for sub in subscriptions.all():
        found.setdefault(sub.name, HandlerStatus(sub.name, 0, 0, 0, None))
    return sorted(found.values(), key=lambda s: s.handler)


def dead_letters(*, handler: str | None = None) -> QuerySet[Delivery]:
    queryset = Delivery.objects.filter(status=Status.DEAD, resolved_at__isnull=True).select_related("event")
    if handler:
        queryset = queryset.filter(handler=handler)
    return queryset.order_by("id")
