"""The notifications context: a record of every message sent to a customer."""

import uuid

from django.db import models


class Notification(models.Model):
    """One message, sent once: unique per (event, kind), so a redelivered event never mails twice."""

    class Kind(models.TextChoices):
        ORDER_CONFIRMED = "order_confirmed"
        ORDER_CANCELLED = "order_cancelled"
        ORDER_SHIPPED = "order_shipped"

    class Status(models.TextChoices):
        SENT = "sent"
        SKIPPED = "skipped"  # no address to send to

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField()
    kind = models.CharField(max_length=30, choices=Kind.choices)
    order_id = models.UUIDField(db_index=True)
    recipient = models.EmailField(blank=True, default="")
    subject = models.CharField(max_length=300)
    body = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENT)
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [models.UniqueConstraint(fields=["event_id", "kind"], name="notifications_once_per_event")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient or '(nobody)'} for order {self.order_id}"
