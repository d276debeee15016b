"""Retention that runs itself: finished work pruned by age, in short batches, by one node at a time.

What goes, by age on the database's clock (settings in ``OUTBOX``, defaults in outbox/conf.py, checked at
start-up by outbox/checks.py):

- done deliveries, ``RETENTION_DONE_DAYS`` after they finished;
- dead letters an operator resolved (discarded), ``RETENTION_RESOLVED_DAYS`` after that;
- inbox rows as old as those done deliveries, but never one younger than :func:`inbox_window`: the
  longest retry window of any subscription plus ``REPLAY_HORIZON_DAYS``. Until then a handler that
  meets an event again (a delivery sent again, history replayed to it) finds its row and skips it.

A delivery's failed attempts (``DeliveryFailure``) go with it, in its batch: on PostgreSQL by the foreign key's
``ON DELETE CASCADE``, elsewhere by a DELETE of them just before the deliveries'.

What never goes: events (the table is the event log: the event store and inventory's fold read it),
unfinished deliveries, and dead letters nobody resolved.

Beat sends ``outbox.prune`` every ``OUTBOX_PRUNE_EVERY_SECONDS``; ``manage.py outbox_prune`` runs the
same prune on demand. Each batch is one statement in its own transaction, so no lock is held longer
than one batch takes: see docs/operations.md, "Retention", for the batch size and the bound measured.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta

from celery import shared_task
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import ExpressionWrapper, QuerySet

from . import checks
from .clock import db_now_plus
from .conf import outbox_setting
from .models import Delivery, DeliveryFailure, InboxEntry
from .runner import backoff_ceiling
from .subscriptions import Subscription, subscriptions
from .tasks import dropping_a_broken_connection

logger = logging.getLogger(__name__)
Status = Delivery.Status

# The key of the PostgreSQL advisory lock only the prune takes: "outbox" in ASCII.
PRUNE_LOCK_KEY = 0x6F7574626F78
# The longest a batch of RETENTION_BATCH_SIZE (5,000) rows may take, statement and commit: measured 22-102 ms
# over 100,000 rows of each kind on a busy 2-core machine (docs/operations.md). A run whose batch took longer says so.
BATCH_BOUND_SECONDS = 0.25
# A beat run prunes for at most this long (or half the soft time limit, if shorter) and leaves the
# rest to the next run, so it never holds an outbox worker process for long.
RUN_SECONDS = 10.0


@dataclass
class PruneReport:
    """What one prune did. ``longest_batch``: seconds from a batch's first statement to its commit."""

    deliveries: int = 0
    inbox: int = 0
    resolved: int = 0
    batches: int = 0
    longest_batch: float = 0.0
    skipped: bool = False  # another node was pruning, so this one did nothing
    complete: bool = True  # False: the deadline came first, and the next run goes on


def retry_window(subscription: Subscription) -> timedelta:
    """The longest a delivery to this subscription can go on being tried: a lease per attempt, the backoffs between.

    A lease bounds an attempt (the hard time limit ends a run before it; a worker lost mid-run is found when it
    runs out). The backoffs are the runner's (:func:`outbox.runner.backoff_ceiling`) without the jitter,
    which only shortens them.
    """
    attempts = subscription.setting("MAX_ATTEMPTS")
    return timedelta(seconds=attempts * outbox_setting("LEASE_SECONDS") + _backoffs(subscription, attempts - 1))


def _backoffs(subscription: Subscription, gaps: int) -> float:
    """The runner's backoff ceilings for the first ``gaps`` failures, summed; in a few steps however many gaps."""
    total = 0.0
    for failed in range(1, gaps + 1):
        ceiling = backoff_ceiling(subscription, failed)
        if ceiling >= subscription.setting("BACKOFF_CAP_SECONDS"):  # capped from here on: every gap left is the cap
            return total + (gaps - failed + 1) * ceiling
        total += ceiling
    return total


def inbox_window() -> timedelta:
    """The least age of a prunable inbox row: the longest retry window of any subscription, plus the replay horizon."""
    longest = max((retry_window(s) for s in subscriptions.all()), default=timedelta(0))
    return longest + timedelta(days=outbox_setting("REPLAY_HORIZON_DAYS"))


def finished_work_prune(
    *, older_than: timedelta | None = None, batch_size: int | None = None, deadline: float | None = None
) -> PruneReport:
    """Prune what retention allows, ``batch_size`` rows per transaction, unless another node is pruning.

    ``older_than`` (default ``RETENTION_DONE_DAYS``) is the age of the done deliveries and inbox rows to go;
    an inbox row younger than :func:`inbox_window` stays whatever it says. No batch starts after
    ``deadline`` (a ``time.monotonic()`` value). Events are never deleted.
    """
    done_age = timedelta(days=outbox_setting("RETENTION_DONE_DAYS")) if older_than is None else older_than
    prunable = {
        "deliveries": Delivery.objects.filter(status=Status.DONE, finished_at__lt=_ago(done_age)),
        "resolved": Delivery.objects.filter(
            status=Status.DEAD, resolved_at__lt=_ago(timedelta(days=outbox_setting("RETENTION_RESOLVED_DAYS")))
        ),
        "inbox": InboxEntry.objects.filter(handled_at__lt=_ago(max(done_age, inbox_window()))),
    }
    with prune_lock() as held:
        if not held:
            return PruneReport(skipped=True)
        return _prune(prunable, batch_size or outbox_setting("RETENTION_BATCH_SIZE"), deadline)


def _ago(age: timedelta) -> ExpressionWrapper:
    return db_now_plus(-age.total_seconds())


@contextmanager
def prune_lock() -> Iterator[bool]:
    """Take the prune lock for the block if no other node holds it; yields whether this one got it (it never waits).

    On PostgreSQL a session advisory lock (``pg_try_advisory_lock``): it spans the batches' transactions and
    dies with the session if the process does. Other databases (SQLite: one host) have no such lock: True.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [PRUNE_LOCK_KEY])
        [held] = cursor.fetchone()
    try:
        yield held
    finally:
        if held:
            with suppress(InterfaceError, OperationalError), connection.cursor() as cursor:  # gone with its session
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PRUNE_LOCK_KEY])


def _prune(prunable: dict[str, QuerySet], batch_size: int, deadline: float | None) -> PruneReport:
    """Take a batch of each kind in turn, so that a backlog of one never starves the others of a deadline's time."""
    report, due = PruneReport(), list(prunable)
    while due:
        for kind in list(due):
            if deadline is not None and time.monotonic() >= deadline:
                report.complete = False
                return report
            deleted = _delete_batch(prunable[kind], batch_size, report)
            setattr(report, kind, getattr(report, kind) + deleted)
            if deleted < batch_size:
                due.remove(kind)
    return report


def _delete_batch(rows: QuerySet, batch_size: int, report: PruneReport) -> int:
    """Delete up to ``batch_size`` of ``rows`` in one statement; rows another transaction holds are skipped.

    ``DELETE ... WHERE id IN (SELECT id ... LIMIT n FOR UPDATE SKIP LOCKED)``: the ids never leave the
    database (a list of 5,000 ids sent back made the batch three times slower), and with no ORDER BY the
    scan stops at the n-th row due instead of sorting every row due.
    """
    started = time.perf_counter()
    with transaction.atomic():
        batch = rows.select_for_update(skip_locked=True).values("id")[:batch_size]
        if rows.model is Delivery and connection.vendor != "postgresql":  # PostgreSQL cascades (migration 0013)
            DeliveryFailure.objects.filter(delivery__in=batch).delete()
        deleted = rows.model.objects.filter(id__in=batch).delete()[0]
    if deleted:
        report.batches += 1
        report.longest_batch = max(report.longest_batch, time.perf_counter() - started)
    return deleted


@shared_task(name="outbox.prune", ignore_result=True)
def prune() -> None:
    """Beat's retention run: prune until done or ``RUN_SECONDS`` (at most half the soft time limit) have passed.

    A worker starts whatever the system checks say, so the run checks the retention settings itself:
    a negative age would prune what is not due.
    """
    problems = checks.retention_problems()
    if problems:
        logger.error("outbox prune: not pruning: %s", " ".join(f"{p.id}: {p.msg}" for p in problems))
        return
    soft = checks.soft_time_limit(prune, request=prune.request)
    budget = min(RUN_SECONDS, 0.5 * soft) if soft else RUN_SECONDS
    with dropping_a_broken_connection():
        report = finished_work_prune(deadline=time.monotonic() + budget)
    if report.longest_batch > BATCH_BOUND_SECONDS:
        logger.warning(
            "outbox prune: a batch held its locks %.0f ms, over the %.0f ms bound; lower OUTBOX_RETENTION_BATCH_SIZE",
            report.longest_batch * 1000, BATCH_BOUND_SECONDS * 1000,
        )  # fmt: skip
    if report.skipped:
        logger.info("outbox prune: another node is pruning; nothing done")
    elif report.batches:
        logger.info(
            "outbox prune: %d done deliveries, %d inbox rows, %d resolved dead letters in %d batches "
            "(longest %.0f ms)%s",
            report.deliveries, report.inbox, report.resolved, report.batches, report.longest_batch * 1000,
            "" if report.complete else "; the next run goes on",
        )  # fmt: skip
