from django.db import models


class Effect(models.Model):
    """A handler's committed effect: exactly one per (handler, event) if the outbox is right."""

    handler = models.CharField(max_length=100)
    event_id = models.UUIDField()
    aggregate_id = models.CharField(max_length=100)
    seq = models.IntegerField(default=0)
    note = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]


class Switch(models.Model):
    """A flag a test flips to break or mend a handler."""

    name = models.CharField(max_length=100, unique=True)
    on = models.BooleanField(default=False)
