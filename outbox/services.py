"""The outbox's own use cases: operating the dead-letter queue and retention."""

from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from .models import Delivery, InboxEntry
from .relay import kick_relay_on_commit

Status = Delivery.Status


@transaction.atomic
def dead_letter_retry(*, deliveries: QuerySet[Delivery]) -> int:
    """Send dead deliveries round again with a fresh set of attempts.

    Only dead, unresolved deliveries are touched; the last error and
    traceback are kept until the next attempt replaces them.
    """
    count = deliveries.filter(status=Status.DEAD, resolved_at__isnull=True).update(
        status=Status.PENDING, attempts=0, crashes=0, started_at=None, due_at=Now(), finished_at=None
    )
    if count:
        kick_relay_on_commit()
    return count


@transaction.atomic
def dead_letter_discard(*, deliveries: QuerySet[Delivery], user: AbstractBaseUser | None) -> int:
    """Mark dead deliveries resolved without running them. Nothing is deleted."""
    return deliveries.filter(status=Status.DEAD, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=user
    )


def finished_work_prune(*, older_than: timedelta, batch_size: int = 10_000) -> tuple[int, int]:
    """Delete done deliveries and inbox rows older than ``older_than``. Events are kept.

    Deletes in batches, each its own transaction, so a large backlog never
    holds long locks. An inbox row outlives its delivery only if the
    delivery is re-created, which retention of events makes harmless.
    """
    cutoff = timezone.now() - older_than
    deliveries = _delete_in_batches(Delivery.objects.filter(status=Status.DONE, finished_at__lt=cutoff), batch_size)
    inbox = _delete_in_batches(InboxEntry.objects.filter(handled_at__lt=cutoff), batch_size)
    return deliveries, inbox


def _delete_in_batches(queryset: QuerySet, batch_size: int) -> int:
    total = 0
    while True:
        with transaction.atomic():
            ids = list(queryset.values_list("id", flat=True)[:batch_size])
            if not ids:
                return total
            total += queryset.model.objects.filter(id__in=ids).delete()[0]
