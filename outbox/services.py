"""The outbox's own use cases: operating the dead-letter queue (retention is outbox/retention.py)."""

from collections.abc import Callable
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from .dispatch import kick_relay_on_commit
from .models import Delivery
from .selectors import DeadLetterGroup, dead_letters_of_group

Status = Delivery.Status
# Letters of a group retried or discarded per transaction, however large the group:
# a batch holds its rows' locks for some 40 ms here (its UPDATE of 500 letters took
# 31-37 ms among 300,000 deliveries), so the relay and runners never wait long on one.
GROUP_BATCH_SIZE = 500


def _fresh_attempts() -> dict[str, Any]:
    """A dead delivery's row as a retry leaves it: pending now, no attempt spent (errors kept until replaced)."""
    return {
        "status": Status.PENDING,
        "attempts": 0,
        "crashes": 0,
        "started_at": None,
        "due_at": Now(),
        "finished_at": None,
    }


@transaction.atomic
def dead_letter_retry(*, deliveries: QuerySet[Delivery]) -> int:
    """Send dead deliveries round again with a fresh set of attempts.

    Only dead, unresolved deliveries are touched; the last error and
    traceback are kept until the next attempt replaces them.
    """
    count = deliveries.filter(status=Status.DEAD, resolved_at__isnull=True).update(**_fresh_attempts())
    if count:
        kick_relay_on_commit()
    return count


@transaction.atomic
def dead_letter_discard(*, deliveries: QuerySet[Delivery], user: AbstractBaseUser | AnonymousUser | None) -> int:
    """Mark dead deliveries resolved without running them. Nothing is deleted.

    The relay is kicked on commit: a discarded letter of an ordered handler
    no longer holds its aggregate's later deliveries, which go on at once.
    """
    count = deliveries.filter(status=Status.DEAD, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=_operator(user)
    )
    if count:
        kick_relay_on_commit()
    return count


def dead_letter_group_retry(
    *, group: DeadLetterGroup, limit: int | None = None, batch_size: int = GROUP_BATCH_SIZE
) -> int:
    """Retry up to ``limit`` of a group's letters (all when None), oldest first; how many were retried.

    See :func:`_in_batches` for what is and is not one transaction. The relay
    is kicked as each batch commits, so the first retried run while the rest
    are being reset.
    """
    return _in_batches(group, limit, batch_size, lambda ids: _update_and_kick(ids, **_fresh_attempts()))


def dead_letter_group_discard(
    *,
    group: DeadLetterGroup,
    user: AbstractBaseUser | AnonymousUser | None,
    limit: int | None = None,
    batch_size: int = GROUP_BATCH_SIZE,
) -> int:
    """Discard up to ``limit`` of a group's letters (all when None), oldest first; how many were discarded."""
    now, operator = timezone.now(), _operator(user)
    return _in_batches(
        group, limit, batch_size, lambda ids: _update_and_kick(ids, resolved_at=now, resolved_by=operator)
    )


def _operator(user: AbstractBaseUser | AnonymousUser | None) -> AbstractBaseUser | None:
    """Who is recorded as having acted: a signed-in user, or nobody (a command; no anonymous user is stored)."""
    return None if user is None or isinstance(user, AnonymousUser) else user


def _in_batches(group: DeadLetterGroup, limit: int | None, batch_size: int, apply: Callable[[list[int]], int]) -> int:
    """Apply ``apply`` to the group's letters, oldest first, ``batch_size`` ids per short transaction.

    Each batch selects its ids ``FOR UPDATE SKIP LOCKED`` (the cause's
    partial index, in id order) and updates them by id, then commits: a
    group of 100,000 never holds the table for long, and a failure part-way
    leaves the batches before it done (run it again for the rest). Letters
    another operator holds at that moment are skipped, not waited for.
    """
    done = 0
    while limit is None or done < limit:
        size = batch_size if limit is None else min(batch_size, limit - done)
        with transaction.atomic():
            letters = dead_letters_of_group(group).select_for_update(skip_locked=True, of=("self",))
            ids = list(letters.values_list("id", flat=True)[:size])
            changed = apply(ids) if ids else 0
        if not changed:
            return done
        done += changed
    return done


def _update_and_kick(ids: list[int], **fields: Any) -> int:
    count = Delivery.objects.filter(id__in=ids).update(**fields)
    kick_relay_on_commit()
    return count
