"""The outbox tables: the event log, one delivery per (event, handler), the inbox.

Indexes are shaped so that the relay's claims touch only unfinished work:
every hot query is served by a partial index whose predicate excludes
finished rows, so a million done deliveries cost the relay nothing.
"""

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

# The pseudo-handler whose dead delivery records an event of a type no class
# registers; retried once the type is known, it fans the event out.
UNKNOWN_TYPE_HANDLER = "outbox.unknown_event_type"


class OutboxEvent(models.Model):
    """One domain event, written in the transaction of the change that caused it.

    The table is the event log: rows are never updated except for
    ``relayed_at``, the relay's mark that the event was fanned out into
    deliveries, and never deleted (on PostgreSQL a trigger refuses both).

    ``stream_position`` is the event's place in its aggregate's stream (1, 2,
    ...; unique per stream): the database assigns the next one as the row is
    inserted, or checks the one an append asks for (``publish(...,
    expected_version=)``) and refuses it if another writer got there first.
    """

    id = models.BigAutoField(primary_key=True)  # the global position in the log
    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=200)
    version = models.PositiveSmallIntegerField()
    occurred_at = models.DateTimeField()
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=100)
    correlation_id = models.UUIDField()
    causation_id = models.UUIDField(null=True, blank=True)
    traceparent = models.CharField(max_length=55, blank=True, default="")
    payload = models.JSONField()
    relayed_at = models.DateTimeField(null=True, blank=True)
    # NULL on insert asks for the stream's next position (set by the database: see OutboxStream).
    stream_position = models.PositiveIntegerField(null=True, editable=False)

    class Meta:
        db_table = "outbox_event"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "stream_position"], name="outbox_event_stream_position"
            ),
        ]
        indexes = [
            models.Index(fields=["id"], name="outbox_event_unrelayed", condition=Q(relayed_at__isnull=True)),
            models.Index(fields=["aggregate_type", "aggregate_id", "id"], name="outbox_event_aggregate"),
            models.Index(fields=["correlation_id", "id"], name="outbox_event_correlation"),
        ]

    def __str__(self) -> str:
        return f"{self.type} v{self.version} #{self.id}"

    @property
    def ordering_key(self) -> str:
        """What an ordered handler's deliveries of this event wait on: ``"<aggregate_type>:<aggregate_id>"``.

        (The SQL of outbox/postgresql.py builds the same key as ``aggregate_type || ':' || aggregate_id``.)
        """
        return f"{self.aggregate_type}:{self.aggregate_id}"


class OutboxStream(models.Model):
    """The head of one aggregate's stream: how many events it holds (its version).

    One row per aggregate, written by the database as each event is inserted
    (a trigger on PostgreSQL; ``publishing`` elsewhere). Its row lock orders
    the appends to one stream: a second writer waits for the first to commit,
    then takes the next position, or, if it expected the version the first
    one moved past, is refused (``outbox.ConcurrencyError``).
    """

    pk = models.CompositePrimaryKey("aggregate_type", "aggregate_id")
    aggregate_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=100)
    version = models.PositiveIntegerField()

    class Meta:
        db_table = "outbox_stream"

    def __str__(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id} at version {self.version}"


class Delivery(models.Model):
    """The delivery of one event to one subscribed handler.

    ``due_at`` is when the relay next looks at the row, on the database's
    clock: for a pending delivery, when it may be dispatched; for a dispatched
    one, when its lease runs out and it is dispatched again.

    ``attempts`` counts handler runs that started (a runner commits
    ``started_at`` before its handlers run), never messages sent: a delivery
    whose message was lost, or waited out an outage in the broker, spends no
    attempt. A dispatched row with ``started_at`` set that no runner holds is
    an attempt whose worker was lost; ``crashes`` counts those, and a
    delivery that has crashed is sent on in a task of its own, so that it can
    no longer take a batch down with it.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        DISPATCHED = "dispatched"
        DONE = "done"
        DEAD = "dead"

    UNFINISHED = (Status.PENDING, Status.DISPATCHED)

    # Not stored: what the runner's claim (outbox/runner.py, outbox/postgresql.py) and the admin's list set on
    # an instance for the moment they hold it.
    already_handled: bool  # its handler's inbox holds the event: it is not run again
    skip_inbox: bool  # no inbox row to write for it (already there, or no handler ran)
    finished_in_advance: bool  # claimed and marked done in one statement, to be set back if it fails
    inbox_in_advance: bool  # its inbox row written in that statement too
    trips_circuit: bool  # its failure opens its handler's circuit
    waits_for_delivery: "Delivery | None"  # the earlier delivery of its aggregate it waits for (ordered handlers)

    id = models.BigAutoField(primary_key=True)
    # Looked up through the unique (event, handler) index; an index of its own would only cost every write.
    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    handler = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)  # handler runs started
    due_at = models.DateTimeField()
    # Which dispatch the task in the broker belongs to: a runner given an older
    # token drops the message unread, so re-sent copies never run twice.
    dispatch_token = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # of the attempt in progress, or the last
    redispatches = models.PositiveIntegerField(default=0)  # sends whose lease ran out before a handler started
    crashes = models.PositiveIntegerField(default=0)  # attempts whose worker was lost
    # Set only for subscriptions ordered per aggregate: "<aggregate_type>:<aggregate_id>".
    ordering_key = models.CharField(max_length=210, null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    # The cause a dead letter is grouped by: the exception's class and its message with ids and numbers masked.
    error_type = models.CharField(max_length=200, blank=True, default="")
    error_pattern = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        db_table = "outbox_delivery"
        verbose_name_plural = "deliveries"
        permissions = [("retry_delivery", "Can retry or discard dead deliveries")]
        constraints = [
            models.UniqueConstraint(fields=["event", "handler"], name="outbox_delivery_once_per_handler"),
        ]
        indexes = [
            models.Index(
                fields=["due_at"], name="outbox_delivery_due", condition=Q(status__in=["pending", "dispatched"])
            ),
            models.Index(
                fields=["handler", "ordering_key", "event"],
                name="outbox_delivery_ordered",
                condition=Q(ordering_key__isnull=False) & ~Q(status="done"),
            ),
            models.Index(fields=["handler", "status"], name="outbox_delivery_open", condition=~Q(status="done")),
            models.Index(fields=["finished_at"], name="outbox_delivery_finished", condition=Q(status="done")),
            # Has a queue moved past a delivery whose lease ran out unstarted? (relay._still_queued)
            models.Index(
                fields=["queue", "dispatched_at"], name="outbox_delivery_started", condition=Q(started_at__isnull=False)
            ),
            models.Index(
                fields=["queue", "dispatched_at"],
                name="outbox_delivery_waiting",
                condition=Q(status="dispatched", started_at__isnull=True),
            ),
            # For deleting a user (SET_NULL); partial, so that the hot path's writes skip it.
            models.Index(
                fields=["resolved_by"], name="outbox_delivery_resolved_by", condition=Q(resolved_by__isnull=False)
            ),
            # Dead letters grouped by cause (selectors.dead_letter_groups).
            models.Index(
                fields=["handler", "error_type", "error_pattern", "id"],
                name="outbox_delivery_dead_cause",
                condition=Q(status="dead", resolved_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.handler} <- event #{self.event_id} ({self.status})"


class DeliveryFailure(models.Model):
    """One failed attempt of a delivery, written by the runner in the transaction that records the failure.

    A delivery keeps only its last error; these rows keep every failed attempt's (a handler that raised, a
    worker lost mid-run, the time limit, a permanent failure, a counted ``RetryLater``) for the causal trace.
    A success writes none. ``counted`` is False for an attempt the delivery was not charged (its circuit
    was open, or a shared batch's worker was lost on its last attempt). ``failed_at`` is the database's now().

    The rows go with their delivery: on PostgreSQL the foreign key is ``ON DELETE CASCADE`` (added by
    migration 0013), so the retention's one-statement DELETE stays one statement (Django does not collect
    them: ``DO_NOTHING``); elsewhere the retention deletes them in the same batch.
    """

    class Cause(models.TextChoices):
        HANDLER_ERROR = "handler_error", "handler error"
        PERMANENT = "permanent", "permanent failure"
        RETRY_LATER = "retry_later", "retry later (counted)"
        TIME_LIMIT = "time_limit", "time limit"
        WORKER_LOST = "worker_lost", "worker lost"
        UNDELIVERABLE = "undeliverable", "undeliverable"  # no handler subscribed, unknown or undecodable event

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(Delivery, on_delete=models.DO_NOTHING, db_constraint=False, related_name="failures")
    attempt = models.PositiveIntegerField()
    cause = models.CharField(max_length=20, choices=Cause.choices)
    error_type = models.CharField(max_length=200, blank=True, default="")
    error = models.TextField(blank=True, default="", help_text="The error's first lines.")
    counted = models.BooleanField(default=True)
    failed_at = models.DateTimeField()

    class Meta:
        db_table = "outbox_delivery_failure"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of delivery #{self.delivery_id}: {self.get_cause_display()}"


class DeadLetterManager(models.Manager):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(status=Delivery.Status.DEAD)


class DeadLetter(Delivery):
    """A dead delivery, as the dead-letter queue shows it."""

    objects: ClassVar[DeadLetterManager] = DeadLetterManager()

    class Meta:
        proxy = True
        verbose_name = "dead letter"


class HandlerCircuit(models.Model):
    """A handler's circuit breaker, and the operator's pause switch.

    ``closed``: deliveries flow. After ``breaker_threshold`` consecutive
    transient failures (across deliveries) it is ``open``: the relay
    dispatches none of the handler's deliveries and a runner given one
    parks it unstarted, so an outage downstream spends no attempts; at
    ``retry_at`` it is ``half_open``: one probe delivery is let through,
    and its success closes the circuit, its failure opens it again. A
    ``paused`` handler gets nothing until resumed, whatever its state.
    A handler without a row is closed.
    """

    class State(models.TextChoices):
        CLOSED = "closed", "closed"
        OPEN = "open", "open"
        HALF_OPEN = "half_open", "half-open"

    id = models.BigAutoField(primary_key=True)
    handler = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)  # open: when a probe may go
    probe_delivery_id = models.BigIntegerField(null=True, blank=True)  # half-open: the one let through
    times_opened = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "outbox_handler_circuit"
        verbose_name = "handler circuit"
        permissions = [("operate_handler", "Can pause and resume handlers")]

    def __str__(self) -> str:
        return f"{self.handler} ({'paused, ' if self.paused else ''}{self.get_state_display()})"


class InboxEntry(models.Model):
    """A handler's record that it handled an event, written with the handler's effects."""

    id = models.BigAutoField(primary_key=True)
    handler = models.CharField(max_length=200)
    event_id = models.UUIDField()
    handled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "outbox_inbox"
        verbose_name_plural = "inbox entries"
        constraints = [
            models.UniqueConstraint(fields=["handler", "event_id"], name="outbox_inbox_once_per_handler"),
        ]
        indexes = [models.Index(fields=["handled_at"], name="outbox_inbox_handled_at")]

    def __str__(self) -> str:
        return f"{self.handler} handled {self.event_id}"


class ReplayProgress(models.Model):
    """How far one replay of the log to one handler got: ``outbox_replay`` resumes from ``cursor``.

    One row per handler and scope (the replay's filters, written out: see
    outbox/replay.py). ``cursor`` is the id of the last event whose delivery
    the replay created, committed with that batch of deliveries, so a replay
    killed at any point goes on from the first event it had not done.
    ``last_event`` fixes the replay's end when it starts: events after it are
    the relay's. ``started_at`` (the database's clock) is when a rebuild
    emptied the read model: deliveries finished before then are run again.
    """

    id = models.BigAutoField(primary_key=True)
    handler = models.CharField(max_length=200)
    scope = models.CharField(max_length=500)
    queue = models.CharField(max_length=100)
    last_event = models.BigIntegerField(help_text="The id of the last event the replay covers.")
    cursor = models.BigIntegerField(default=0, help_text="The id of the last event done (0: none yet).")
    scanned = models.PositiveBigIntegerField(default=0, help_text="Matching events done, delivered or not.")
    created = models.PositiveBigIntegerField(default=0, help_text="Deliveries created or run again.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "outbox_replay_progress"
        verbose_name_plural = "replay progress"
        constraints = [models.UniqueConstraint(fields=["handler", "scope"], name="outbox_replay_once_per_scope")]

    def __str__(self) -> str:
        state = "finished" if self.finished_at else f"at event #{self.cursor} of #{self.last_event}"
        return f"replay to {self.handler} ({self.scope}): {state}"


class RelayWakeup(models.Model):
    """The coalescing flag of relay kicks: one row, set while a kicked relay run is queued.

    In the database, not the cache, so every process sees it whatever cache
    the deployment has (see outbox/wakeup.py). The row is made by the first kick.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "outbox_relay_wakeup"

    def __str__(self) -> str:
        return f"relay run queued at {self.queued_at}" if self.queued_at else "no relay run queued"


class SubjectKey(models.Model):
    """The key that seals one data subject's personal data in the log (``outbox.personal``).

    Kept apart from the log on purpose: deleting the row is how a subject is
    forgotten, since the log itself is never rewritten. ``subject`` is the
    caller's name for whose data it is (``customer:42``).
    """

    subject = models.CharField(max_length=200, primary_key=True)
    key = models.CharField(max_length=44)  # a Fernet key: 32 bytes, URL-safe base64
    created_at = models.DateTimeField()

    class Meta:
        db_table = "outbox_subject_key"

    def __str__(self) -> str:
        return self.subject
