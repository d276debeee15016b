"""The notifications context: a record of every message to a customer, and whether it has gone out."""

import uuid

from django.db import models
from django.db.models import Q


class Notification(models.Model):
    """One message, sent once: unique per (event, kind), so a redelivered event never mails twice.

    The row commits as ``pending`` with the handler's transaction and is sent
    after the commit (``services.notification_send``). Its ``message_id`` is
    derived from the event and the kind, so a message sent again after a crash
    between sending and marking it sent is the same message to a mail system.
    """

    class Kind(models.TextChoices):
        ORDER_CONFIRMED = "order_confirmed"
        ORDER_CANCELLED = "order_cancelled"
        ORDER_SHIPPED = "order_shipped"

    class Status(models.TextChoices):
        PENDING = "pending"  # committed, not yet accepted by the mail server
        SENT = "sent"
        SKIPPED = "skipped"  # no address to send to
        FAILED = "failed"  # gave up after NOTIFICATIONS_MAX_ATTEMPTS failed sends

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField()
    kind = models.CharField(max_length=30, choices=Kind.choices)
    order_id = models.UUIDField(db_index=True)
    recipient = models.EmailField(blank=True, default="")
    subject = models.CharField(max_length=300)
    body = models.TextField()  # the text part, as sent
    html_body = models.TextField(blank=True, default="")  # its HTML alternative, as sent; none on older rows
    message_id = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # When the sweeper may (next) send a pending row; read on the database's clock.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["event_id", "kind"], name="notifications_once_per_event")]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="notifications_pending_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient or '(nobody)'} for order {self.order_id}"
