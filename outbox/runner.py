"""The handler runner: what a worker does with a batch of delivery ids.

Two steps. **Start**: one committed statement records that this runner
starts the batch's deliveries (``started_at``, ``attempts + 1``, a fresh
lease); only that counts as an attempt, so a message the broker lost, or that
waited out an outage, costs none. A copy of a message from an older dispatch
(another token) starts nothing and is dropped unread. On PostgreSQL the start
also takes other deliveries that have waited a second or more in the same
queue, up to ``TASK_BATCH_SIZE``, oldest first: under a backlog one task does
a batch's work, and the messages of those deliveries, when they come up, find
them done. **Run**: one
transaction per batch; each delivery's handler effects, its inbox row, its
"done" mark and any events it published commit together, or (on an
exception) none of them do and the delivery is scheduled again with
exponential backoff and jitter. A batch runs without savepoints first; only
if something in it fails does it run again with one savepoint per delivery,
so that a failure never undoes its siblings' work. The rows are locked ``FOR UPDATE
SKIP LOCKED`` from the run's first statement to its commit, so no other
runner, and no relay, touches them meanwhile.

A delivery found started, unlocked and unfinished is an attempt whose worker
was lost (killed, out of memory, past its hard time limit): the runner that
finds it records that as a failed attempt, and the delivery goes on in a task
of its own, so a poison delivery takes its batch down once and then only
itself. A database connection lost mid-run is not the handlers' failure: the
runner reconnects and runs the same attempt again.

The run stops at a delivery boundary when the task's soft time limit nears:
what finished commits, what did not start is handed back unspent.
"""

import logging
import random
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DEFAULT_DB_ALIAS, DatabaseError, OperationalError, connection, connections, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, OuterRef, Value
from django.db.models.functions import Now
from django.utils import timezone
from psycopg.pq import TransactionStatus

from . import breaker, failure_log, failures, metrics, postgresql, telemetry
from .clock import db_now_plus
from .conf import outbox_setting
from .context import Cause, caused_by
from .dispatch import kick_relay_on_commit
from .events import Envelope, EventDecodeError, registry
from .failures import Verdict, not_subscribed_error, worker_lost_error
from .models import UNKNOWN_TYPE_HANDLER, Delivery, DeliveryFailure, HandlerCircuit, InboxEntry, OutboxEvent
from .selectors import shared_starts
from .subscriptions import Subscription, subscriptions

logger = logging.getLogger(__name__)
Status = Delivery.Status
T = TypeVar("T")

# A runner takes the locks of the deliveries it started a moment after it
# committed their start. A start younger than this that no runner holds may be
# that moment, so it is not taken for a lost worker yet.
START_GRACE_SECONDS = 2.0
# A delivery that waited this long in its queue is part of a backlog: a runner that
# starts a task in that queue takes it along (see postgresql.start).
BACKLOG_SECONDS = 1.0
# Reconnecting after the database dropped the connection: pauses between tries.
RECONNECT_PAUSES = (0.2, 1.0, 3.0)
# What a failure is, on its DeliveryFailure row, by the error type of the failures no handler raised.
FailureCause = DeliveryFailure.Cause
CAUSE_OF_TYPE = {
    failures.WORKER_LOST: FailureCause.WORKER_LOST,
    failures.NOT_SUBSCRIBED: FailureCause.UNDELIVERABLE,
    failures.UNKNOWN_TYPE: FailureCause.UNDELIVERABLE,
    failures.UNDECODABLE: FailureCause.UNDELIVERABLE,
}


@dataclass
class RunReport:
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # finished, another dispatch's, or being run elsewhere
    failed: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)  # their last attempt's worker was lost
    busy: list[int] = field(default_factory=list)  # started a moment ago by another runner, or just lost
    handed_back: list[int] = field(default_factory=list)  # not run (time limit, or a circuit that opened): unspent
    parked: list[int] = field(default_factory=list)  # their handler's circuit is open or paused: pending, unspent
    outcomes: breaker.Outcomes = field(default_factory=breaker.Outcomes)  # for the handlers' circuit breakers


@dataclass(frozen=True)
class _Start:
    started: list[int]
    started_at: datetime | None
    lost: list[int]
    busy: list[int]
    parked: list[int] = field(default_factory=list)


class _HandlerFailed(Exception):
    """A handler of a one-delivery batch raised: its whole transaction must roll back."""

    def __init__(self, delivery: Delivery, subscription: Subscription, exc: BaseException, trace: str) -> None:
        super().__init__(str(exc))
        self.delivery, self.subscription, self.exc, self.trace = delivery, subscription, exc, trace


class _BatchFailed(Exception):
    """A handler of a batch run without savepoints raised: the batch rolls back and runs again, isolated."""


class _OutOfTime(Exception):
    """The soft time limit interrupted a handler: the batch stops; that delivery failed, the rest go back."""

    def __init__(self, delivery: Delivery, trace: str) -> None:
        super().__init__("soft time limit")
        self.delivery, self.trace = delivery, trace


class ConnectionLost(Exception):
    """The database connection went away mid-run: nothing of the run committed."""


def run_deliveries(delivery_ids: list[int], *, token: int | None = None, deadline: float | None = None) -> RunReport:
    """Start, then run, the deliveries of one task.

    ``token`` is the dispatch the task was sent for (None: any dispatch, for
    tasks sent before tokens existed). ``deadline`` (``time.monotonic()``) is
    when to stop starting deliveries: they are handed back, unspent.
    """
    start = _reconnecting(lambda: _start(delivery_ids, token))
    report = RunReport(lost=start.lost, busy=start.busy, parked=start.parked)
    accounted = {*start.started, *start.lost, *start.busy, *start.parked}
    report.skipped = sorted(set(delivery_ids) - accounted)
    if start.lost:
        _reconnecting(lambda: _record_lost(start.lost, report))
    if start.started:
        _reconnecting(lambda: _run_started(start, report, deadline))
    if report.outcomes.tallies:
        breaker.record(report.outcomes)
    metrics.record_dropped(len(report.skipped))
    return report


def _reconnecting(step: Callable[[], T]) -> T:
    """Run a step; if the database dropped the connection, reconnect and run it again."""
    for pause in (*RECONNECT_PAUSES, None):
        try:
            return step()
        except (ConnectionLost, DatabaseError) as exc:
            if not (isinstance(exc, ConnectionLost) or _connection_lost()) or pause is None:
                raise
            logger.warning("outbox: database connection lost; reconnecting to run the step again", exc_info=True)
            connection.close()
            time.sleep(pause)
    raise AssertionError("unreachable")


def _connection_lost() -> bool:
    raw = connection.connection
    return raw is None or bool(getattr(raw, "closed", False)) or bool(getattr(raw, "broken", False))


# Start --------------------------------------------------------------------------------------------------------


def _start(delivery_ids: list[int], token: int | None) -> _Start:
    lease = outbox_setting("LEASE_SECONDS")
    if connection.vendor == "postgresql":
        take = max(0, outbox_setting("TASK_BATCH_SIZE") - len(delivery_ids))
        rows = postgresql.start(
            delivery_ids=delivery_ids,
            token=token,
            lease=lease,
            grace=START_GRACE_SECONDS,
            take=take,
            backlog=BACKLOG_SECONDS,
        )
    else:
        rows = _start_portable(delivery_ids, token, lease)
    parked = [row[0] for row in rows if row[3]]
    rows = [row for row in rows if not row[3]]
    started = [row[0] for row in rows if row[1] is not None]
    started_at = next((row[1] for row in rows if row[1] is not None), None)
    lost = [row[0] for row in rows if row[1] is None and row[2]]
    busy = [row[0] for row in rows if row[1] is None and not row[2]]
    return _Start(started=started, started_at=started_at, lost=lost, busy=busy, parked=parked)


def _start_portable(delivery_ids: list[int], token: int | None, lease: float) -> list[tuple]:
    """The start without PostgreSQL's one statement (see postgresql.START_SQL); it takes no backlog along."""
    with transaction.atomic():
        rows = Delivery.objects.filter(id__in=delivery_ids, status=Status.DISPATCHED)
        if token is not None:
            rows = rows.filter(dispatch_token=token)
        found = list(rows.select_for_update().values_list("id", "started_at", "handler"))
        now = timezone.now()
        blocked = {c.handler: c for c in breaker.blocked_circuits()}
        parked = [i for i, started, handler in found if started is None and _held_back(i, blocked.get(handler))]
        Delivery.objects.filter(id__in=parked).update(status=Status.PENDING, due_at=now, dispatch_token=None)
        fresh = [i for i, started, _ in found if started is None and i not in parked]
        Delivery.objects.filter(id__in=fresh).update(
            attempts=F("attempts") + 1, started_at=now, due_at=now + timedelta(seconds=lease)
        )
        old = now - timedelta(seconds=START_GRACE_SECONDS)
        return [(i, now if s is None else None, s is not None and s < old, i in parked) for i, s, _ in found]


def _held_back(delivery_id: int, circuit: HandlerCircuit | None) -> bool:
    """Whether a circuit keeps this delivery from starting: paused, open, or half-open for another probe."""
    if circuit is None:
        return False
    return circuit.paused or circuit.state == circuit.State.OPEN or circuit.probe_delivery_id != delivery_id


def _record_lost(delivery_ids: list[int], report: RunReport) -> None:
    """Record attempts whose worker was lost as failed; each goes on alone (or dead, if it was its last).

    A last attempt lost in a batch shared with others is not charged: the
    delivery has that attempt again, alone (see selectors.shared_starts).
    """
    with transaction.atomic():
        lost = _claim_lost(delivery_ids)
        shared = shared_starts(lost)
        for delivery in lost:
            sub = subscriptions.get(delivery.handler)
            max_attempts = sub.setting("MAX_ATTEMPTS") if sub else 1
            last = delivery.attempts >= max_attempts
            refund = last and sub is not None and delivery.started_at in shared
            delivery.crashes += 1
            error = worker_lost_error(delivery.attempts, max_attempts, last=last, shared=refund)
            outcome = _fail(
                delivery,
                error,
                "",
                subscription=sub,
                bury=sub is None or (last and not refund),
                cause=failures.WORKER_LOST,
                refund=refund,
            )
            (report.dead if outcome.status == Status.DEAD else report.failed).append(delivery.id)
            if outcome.ordering_key:
                kick_relay_on_commit()


def _claim_lost(delivery_ids: list[int]) -> list[Delivery]:
    old = ExpressionWrapper(Now() - Value(timedelta(seconds=START_GRACE_SECONDS)), output_field=DateTimeField())
    return list(
        Delivery.objects.filter(id__in=delivery_ids, status=Status.DISPATCHED, started_at__lt=old)
        .select_for_update(skip_locked=True)
        .only("id", "handler", "attempts", "crashes", "ordering_key", "started_at")
    )


# Run ----------------------------------------------------------------------------------------------------------


def _run_started(start: _Start, report: RunReport, deadline: float | None) -> None:
    """Run the deliveries this runner started (the same attempt again, after a lost connection).

    A batch runs first in one transaction with no savepoint per delivery (two
    round trips fewer each). If anything in it fails, nothing of it has
    committed: it runs again with a savepoint per delivery, so that the
    failure is its delivery's alone and the others' effects commit.
    """
    _clear(report)
    try:
        if len(start.started) > 1:
            try:
                _run_batch(start, report, deadline, isolate=False)
                return
            except (_BatchFailed, DatabaseError) as failed:
                if _connection_lost():
                    raise ConnectionLost() from failed
                _reset_if_broken()
                _clear(report)
                logger.info("outbox: a batch of %d failed; running it again, each delivery alone", len(start.started))
        _run_batch(start, report, deadline, isolate=len(start.started) > 1)
    except _HandlerFailed as failure:
        out_of_time = isinstance(failure.exc, SoftTimeLimitExceeded)
        if _connection_lost() and not out_of_time:
            raise ConnectionLost() from failure
        if out_of_time:
            _cancel_running_query()
        _reset_if_broken()
        _record_failure(failure, start.started_at, report)
    except _OutOfTime as out_of_time:  # the interruption left the batch's transaction unusable: all rolled back
        _reset_if_broken()
        _give_up_at_the_time_limit(out_of_time, start, report)


def _clear(report: RunReport) -> None:
    for outcome in ("done", "failed", "dead", "handed_back"):
        getattr(report, outcome).clear()
    report.outcomes.clear()


def _run_batch(start: _Start, report: RunReport, deadline: float | None, *, isolate: bool) -> None:
    with transaction.atomic():
        claimed = _claim(start.started, start.started_at, finish=True)
        handled, handed_back, tripped = [], [], set()
        for index, delivery in enumerate(claimed):
            if deadline is not None and time.monotonic() >= deadline:
                handed_back += claimed[index:]
                break
            if delivery.handler in tripped:  # its circuit opens as this batch commits: the rest wait, unspent
                handed_back.append(delivery)
                continue
            try:
                outcome = _run_one(delivery, report, isolate=isolate, alone=len(claimed) == 1)
            except _OutOfTime as out_of_time:
                if not isolate or not _transaction_usable():
                    raise
                _fail_out_of_time(delivery, out_of_time.trace, report)
                handed_back += claimed[index + 1 :]
                break
            if outcome is None:
                handled.append(delivery)
                report.done.append(delivery.id)
            else:
                (report.dead if outcome.status == Status.DEAD else report.failed).append(delivery.id)
                if getattr(outcome, "trips_circuit", False):
                    tripped.add(delivery.handler)
        _finish(handled)
        _hand_back(handed_back)
        _unfinish([d for d in claimed if d not in handled])
        report.handed_back = [d.id for d in handed_back]
        if handed_back or any(d.ordering_key for d in claimed):
            kick_relay_on_commit()  # send the handed-back on, release an ordered key's next event


def _give_up_at_the_time_limit(out_of_time: _OutOfTime, start: _Start, report: RunReport) -> None:
    """After a rolled-back batch: the interrupted delivery failed; every other one goes back unspent.

    The old connection's transaction may still hold the rows a moment (its
    query was cancelled, its rollback is the server's to finish), so the
    rows are waited for, briefly; if they stay locked, their lease will tell.
    """
    report.done.clear()
    try:
        with transaction.atomic():
            claimed = _claim(start.started, start.started_at, wait=True)
            for delivery in claimed:
                if delivery.id == out_of_time.delivery.id:
                    _fail_out_of_time(delivery, out_of_time.trace, report)
            back = [d for d in claimed if d.id != out_of_time.delivery.id]
            _hand_back(back)
            report.handed_back = [d.id for d in back]
            kick_relay_on_commit()
    except OperationalError:  # still locked: left to the lease
        logger.warning("outbox: could not give back the deliveries of a batch stopped at its time limit", exc_info=True)


def _fail_out_of_time(delivery: Delivery, trace: str, report: RunReport) -> None:
    """Record the attempt the soft time limit interrupted as failed (or dead, if it was the last)."""
    sub = subscriptions.get(delivery.handler)
    if sub is None:  # unsubscribed while it ran: buried, as _run_one buries a delivery of no subscription
        error = not_subscribed_error(delivery.handler)
        failed = _fail(delivery, error, trace, bury=True, cause=failures.NOT_SUBSCRIBED)
    else:
        failed = _handler_failed(delivery, SoftTimeLimitExceeded(), trace, sub, report)
    (report.dead if failed.status == Status.DEAD else report.failed).append(delivery.id)


def _transaction_usable() -> bool:
    """Whether the batch's transaction can go on: an interrupted query may leave it aborted or still busy."""
    if connection.needs_rollback or _connection_lost():
        return False
    return connection.vendor != "postgresql" or _pg_status() == TransactionStatus.INTRANS


def _cancel_running_query() -> None:
    """Ask the server to stop the query an interruption left running (a lock wait, say), so its locks go."""
    if connection.vendor == "postgresql" and not _connection_lost() and _pg_status() == TransactionStatus.ACTIVE:
        connection.connection.cancel_safe(timeout=2.0)


def _reset_if_broken() -> None:
    """Drop a connection left unusable (a query still running after an interruption); the next use reconnects."""
    if _connection_lost() or (connection.vendor == "postgresql" and _pg_status() == TransactionStatus.ACTIVE):
        connection.close()


def _drop_interrupted_connections() -> None:
    """Cancel and drop the handler's other database connections that an interruption left mid-query.

    psycopg leaves a connection busy when an exception (the soft time limit's)
    interrupts its query outside a transaction: every later statement on it
    fails with "another command is already in progress", for every handler
    this worker runs while the connection lives (``CONN_MAX_AGE``), and the
    server goes on running the query, locks and all. The runner's own
    connection is seen to where its batch is given up.
    """
    for other in connections.all(initialized_only=True):
        if other.alias == DEFAULT_DB_ALIAS or other.vendor != "postgresql" or other.connection is None:
            continue
        if other.connection.closed:
            other.close()
        elif other.connection.info.transaction_status == TransactionStatus.ACTIVE:
            logger.warning("outbox: dropping database connection %r, left mid-query by an interruption", other.alias)
            other.connection.cancel_safe(timeout=2.0)
            other.close()


def _pg_status() -> "TransactionStatus":
    return connection.connection.info.transaction_status


def _record_failure(failure: _HandlerFailed, started_at: datetime | None, report: RunReport) -> None:
    """Record the failure of a one-delivery batch, in a transaction of its own (the batch's rolled back)."""
    with transaction.atomic():
        claimed = _claim([failure.delivery.id], started_at, wait=True)  # only our rolled-back batch held it
        if not claimed:  # another runner took it over meanwhile
            report.skipped.append(failure.delivery.id)
            return
        outcome = _handler_failed(claimed[0], failure.exc, failure.trace, failure.subscription, report)
        (report.dead if outcome.status == Status.DEAD else report.failed).append(outcome.id)
        if outcome.ordering_key:
            kick_relay_on_commit()


def _claim(
    delivery_ids: list[int], started_at: datetime | None, *, wait: bool = False, finish: bool = False
) -> list[Delivery]:
    """Lock the deliveries this runner started, that no other runner holds (or wait a moment), with their events.

    ``finish``: on PostgreSQL, mark them done and write their inbox rows in the same statement, to be set back
    for those that do not succeed (:func:`_unfinish`); elsewhere :func:`_finish` does it after the handlers.
    """
    if connection.vendor == "postgresql":
        return postgresql.claim(delivery_ids, started_at=started_at, wait=wait, finish=finish)
    already_handled = InboxEntry.objects.filter(handler=OuterRef("handler"), event_id=OuterRef("event__event_id"))
    return list(
        Delivery.objects.filter(id__in=delivery_ids, status=Status.DISPATCHED, started_at=started_at)
        .select_related("event")
        # Declared on Delivery for PostgreSQL's claim, which sets it by hand; the plugin sees a clash.
        .annotate(already_handled=Exists(already_handled))  # type: ignore[no-redef]
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("id")
    )


def _run_one(delivery: Delivery, report: RunReport, *, isolate: bool, alone: bool = True) -> Delivery | None:
    """Run one delivery (in a savepoint if ``isolate``). None when it succeeded, else the updated row.

    Not isolated, a failure undoes the whole batch's transaction: raised as
    ``_HandlerFailed`` when the delivery is ``alone`` in it (recorded after the
    rollback), as ``_BatchFailed`` when not (the batch runs again, isolated),
    and as ``_OutOfTime`` at the soft time limit.
    """
    if delivery.already_handled:
        delivery.skip_inbox = True
        metrics.record_inbox_duplicate(delivery.handler)
        return None
    delivery.skip_inbox = False
    if delivery.handler == UNKNOWN_TYPE_HANDLER:
        return _refan(delivery)
    subscription = subscriptions.get(delivery.handler)
    if subscription is None:
        return _fail(delivery, not_subscribed_error(delivery.handler), "", bury=True, cause=failures.NOT_SUBSCRIBED)
    try:
        event = registry.decode(delivery.event.type, delivery.event.version, delivery.event.payload)
    except EventDecodeError as exc:
        return _fail(delivery, str(exc), traceback.format_exc(), bury=True, cause=failures.UNDECODABLE)
    started = time.perf_counter()
    try:
        with (
            transaction.atomic() if isolate else nullcontext(),
            caused_by(_cause_of(delivery.event)),
            telemetry.delivering(delivery.event, delivery.handler, delivery.attempts),
        ):
            envelope = envelope_of(
                delivery.event, attempt=delivery.attempts, max_attempts=subscription.setting("MAX_ATTEMPTS")
            )
            subscription.handler(event, envelope)
    except Exception as exc:
        _drop_interrupted_connections()
        if _connection_lost():
            raise ConnectionLost() from exc
        # At ERROR with its traceback, so that an error tracker reading the log (such as Sentry's logging
        # integration) reports it; a batch that runs again delivery by delivery reports it then, and a
        # RetryLater is the handler's request, not an error.
        reported = (isolate or alone) and not isinstance(exc, failures.RetryLater)
        logger.log(
            logging.ERROR if reported else logging.WARNING,
            "outbox: %s failed on event %s (attempt %s)",
            delivery.handler,
            delivery.event_id,
            delivery.attempts,
            exc_info=True,
        )
        trace = traceback.format_exc()
        if not isolate and alone:
            raise _HandlerFailed(delivery, subscription, exc, trace) from exc
        if not isolate:
            if isinstance(exc, SoftTimeLimitExceeded):
                _cancel_running_query()
                raise _OutOfTime(delivery, trace) from exc
            raise _BatchFailed() from exc
        if isinstance(exc, SoftTimeLimitExceeded):
            _cancel_running_query()
            raise _OutOfTime(delivery, trace) from exc
        return _handler_failed(delivery, exc, trace, subscription, report)
    finally:
        metrics.HANDLER_SECONDS.labels(delivery.handler).observe(time.perf_counter() - started)
    report.outcomes.add(subscription, ok=True)
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "SoftTimeLimitExceeded: the handler ran past the task's soft time limit and was interrupted."
    return f"{type(exc).__name__}: {exc}"


def _finish(handled: list[Delivery]) -> None:
    """Write the inbox rows and mark the deliveries done (one statement on PostgreSQL), unless the claim did."""
    if not handled:
        return
    handlers = [d.handler for d in handled]
    transaction.on_commit(lambda: metrics.record_deliveries_done(handlers))
    handled = [d for d in handled if not getattr(d, "finished_in_advance", False)]
    if not handled:
        return
    inbox = [d for d in handled if not d.skip_inbox]
    if connection.vendor == "postgresql":
        postgresql.finish(delivery_ids=[d.id for d in handled], inbox=[(d.handler, d.event.event_id) for d in inbox])
        return
    InboxEntry.objects.bulk_create([InboxEntry(handler=d.handler, event_id=d.event.event_id) for d in inbox])
    Delivery.objects.filter(id__in=[d.id for d in handled]).update(status=Status.DONE, finished_at=Now())


def _hand_back(deliveries: list[Delivery]) -> None:
    """Give back deliveries this runner started but never ran: their attempt is not spent."""
    if deliveries:
        Delivery.objects.filter(id__in=[d.id for d in deliveries]).update(
            status=Status.PENDING, attempts=F("attempts") - 1, started_at=None, due_at=Now(), finished_at=None
        )


def _unfinish(deliveries: list[Delivery]) -> None:
    """Drop the inbox rows the claim wrote for deliveries that failed or went back (their status is set already)."""
    written = [(d.handler, d.event.event_id) for d in deliveries if getattr(d, "inbox_in_advance", False)]
    if written:
        postgresql.drop_inbox(written)


def _handler_failed(
    delivery: Delivery, exc: BaseException, trace: str, subscription: Subscription, report: RunReport
) -> Delivery:
    """A handler raised: what its subscription's exception policy and circuit make of it.

    Permanent: dead now. ``RetryLater``: due when the handler said, not
    counted unless it asked. Transient: counted towards the circuit breaker;
    while the circuit is open or half-open the outage is known, so the
    attempt is not charged to the delivery; otherwise retried with backoff
    until ``max_attempts``.
    """
    cause, error = failures.error_type(exc), _describe(exc)
    verdict = subscription.verdict(exc)
    if verdict is Verdict.PERMANENT:
        return _fail(
            delivery,
            f"Permanent failure (not retried): {error}",
            trace,
            bury=True,
            cause=cause,
            kind=FailureCause.PERMANENT,
        )
    if isinstance(exc, failures.RetryLater):  # Verdict.DEFERRED
        return _defer(delivery, exc, subscription, cause)
    circuit = breaker.circuit_of(delivery.handler) if subscription.has_breaker else None
    report.outcomes.add(subscription, ok=False, error=error)
    kind = FailureCause.TIME_LIMIT if isinstance(exc, SoftTimeLimitExceeded) else FailureCause.HANDLER_ERROR
    if breaker.outage_known(circuit):
        error += f" (not counted as an attempt: the circuit of {delivery.handler} is {circuit.get_state_display()})"
        return _fail(delivery, error, trace, subscription=subscription, cause=cause, refund=True, kind=kind)
    failed = _fail(delivery, error, trace, subscription=subscription, cause=cause, kind=kind)
    tally = report.outcomes.tallies.get(delivery.handler)
    if tally is not None:
        earlier = 0 if tally.succeeded or circuit is None else circuit.consecutive_failures
        failed.trips_circuit = earlier + tally.failures >= subscription.setting("BREAKER_THRESHOLD")
    return failed


def _defer(delivery: Delivery, exc: failures.RetryLater, subscription: Subscription, cause: str) -> Delivery:
    """The handler asked to be tried again at a time of its choosing."""
    counted = " (counted as a failed attempt)" if exc.counted else " (not counted as an attempt)"
    error = f"Retry later in {exc.seconds:g} s, as the handler asked: {exc}{counted}"
    kind = FailureCause.RETRY_LATER if exc.counted else None  # not counted: not a failed attempt, nothing recorded
    if exc.counted and delivery.attempts >= subscription.setting("MAX_ATTEMPTS"):
        return _fail(delivery, error, "", subscription=subscription, cause=cause, kind=kind)
    return _fail(
        delivery,
        error,
        "",
        subscription=subscription,
        cause=cause,
        refund=not exc.counted,
        delay=exc.seconds,
        kind=kind,
    )


def _fail(
    delivery: Delivery,
    error: str,
    trace: str,
    *,
    subscription: Subscription | None = None,
    bury: bool = False,
    cause: str = "",
    refund: bool = False,
    delay: float | None = None,
    kind: FailureCause | None = FailureCause.HANDLER_ERROR,
) -> Delivery:
    """Record a failed attempt: retry later with backoff (or after ``delay``), or dead when out of attempts.

    ``refund``: the attempt is not counted (the delivery is not a step closer to the dead letter).
    ``kind``: what the attempt's DeliveryFailure row says it failed of (by ``cause`` for the failures no
    handler raised); None: it was no failed attempt (a ``RetryLater`` not counted), no row.
    """
    if kind is not None:
        _record_failed_attempt(delivery, error, CAUSE_OF_TYPE.get(cause, kind), cause=cause, counted=not refund)
    delivery.last_error, delivery.traceback, delivery.started_at = error[:10_000], trace, None
    delivery.error_type, delivery.error_pattern = cause, failures.error_pattern(error)
    if refund:
        delivery.attempts -= 1
    if subscription is None and not bury:
        raise ValueError(f"delivery {delivery.id}: only a buried delivery may have no subscription to retry by")
    if bury or subscription is None or (not refund and delivery.attempts >= subscription.setting("MAX_ATTEMPTS")):
        delivery.status, delivery.finished_at = Status.DEAD, Now()
        logger.error("outbox: delivery %s to %s is dead: %s", delivery.id, delivery.handler, error)
    else:
        delivery.status = Status.PENDING
        seconds = delay if delay is not None else backoff_seconds(subscription, max(1, delivery.attempts))
        delivery.due_at = db_now_plus(seconds)
    fields = ["status", "finished_at", "due_at", "last_error", "traceback", "started_at", "crashes", "attempts"]
    delivery.save(update_fields=[*fields, "error_type", "error_pattern"])
    return delivery


def _record_failed_attempt(delivery: Delivery, error: str, kind: FailureCause, *, cause: str, counted: bool) -> None:
    """Keep the attempt's failure (``delivery.attempts`` is its number), in the transaction that records it."""
    failure_log.failed_attempt_record(
        delivery_id=delivery.id, attempt=delivery.attempts, cause=kind, error_type=cause, error=error, counted=counted
    )


def backoff_seconds(subscription: Subscription, attempts: int) -> float:
    """Exponential backoff with jitter: ``base * 2**(n-1)``, capped, less up to 20%.

    The jitter spreads retries of many deliveries that failed together, yet
    keeps each delay longer than the one before it (until the cap).
    """
    return backoff_ceiling(subscription, attempts) * random.uniform(0.8, 1.0)


def backoff_ceiling(subscription: Subscription, attempts: int) -> float:
    """The delay after ``attempts`` failed attempts before its jitter: ``base * 2**(n-1)``, at most the cap."""
    cap, base = subscription.setting("BACKOFF_CAP_SECONDS"), subscription.setting("BACKOFF_BASE_SECONDS")
    return min(cap, base * 2.0 ** min(attempts - 1, 1023))  # a float power: past the cap, never an overflow


def _refan(delivery: Delivery) -> Delivery | None:
    """Retry of an event whose type was unknown: fan it out if the type is known now."""
    event = delivery.event
    if not registry.is_registered(event.type):
        return _fail(
            delivery,
            f"Event type {event.type!r} is still unknown to this deployment.",
            "",
            bury=True,
            cause=failures.UNKNOWN_TYPE,
        )
    Delivery.objects.bulk_create(
        [
            Delivery(
                event=event,
                handler=s.name,
                queue=s.queue,
                due_at=timezone.now(),
                ordering_key=event.ordering_key if s.ordered else None,
            )
            for s in subscriptions.for_type(event.type)
        ],
        ignore_conflicts=True,
    )
    delivery.skip_inbox = True
    kick_relay_on_commit()
    return None


def _cause_of(event: OutboxEvent) -> Cause:
    return Cause(correlation_id=event.correlation_id, causation_id=event.event_id, traceparent=event.traceparent)


def envelope_of(event: OutboxEvent, *, attempt: int = 1, max_attempts: int = 1) -> Envelope:
    return Envelope(
        event_id=event.event_id,
        type=event.type,
        version=event.version,
        occurred_at=event.occurred_at,
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        traceparent=event.traceparent,
        position=event.id,
        attempt=attempt,
        max_attempts=max_attempts,
    )
