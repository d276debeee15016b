"""How the outbox's records look in the REST API; shared by every view that shows events."""

import datetime as dt
from uuid import UUID

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Delivery, OutboxEvent

AS_OF_FORMAT = "an ISO 8601 date and time with its UTC offset, e.g. 2026-03-01T12:00:00Z or 2026-03-01T13:00:00+01:00"


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date and time that says its offset from UTC: a time without one is refused, not guessed."""

    default_error_messages = {
        "invalid": f"Give {AS_OF_FORMAT}. (In a URL, write + as %2B.)",
        "naive": f"This time has no UTC offset, so it is ambiguous: give {AS_OF_FORMAT}.",
        "out_of_range": "This time is out of range: in UTC it falls before 0001-01-01 or after 9999-12-31.",
    }

    def to_internal_value(self, value: object) -> dt.datetime:
        try:
            # (Python's parser takes a bare date as midnight: here a time of day is required.)
            parsed = parse_datetime(value) if isinstance(value, str) and not _is_date(value) else None
        except ValueError:  # well-formed but impossible, e.g. month 13
            parsed = None
        if parsed is None:
            self.fail("invalid")
        if timezone.is_naive(parsed):
            self.fail("naive")
        try:
            return parsed.astimezone(dt.UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is a year 0 in UTC, which datetime cannot hold
            self.fail("out_of_range")


def _is_date(value: str) -> bool:
    try:
        return parse_date(value) is not None
    except ValueError:
        return True


class EventEnvelopeSerializer(serializers.Serializer):
    """A stored event: its envelope and its payload, as written (not upcast)."""

    event_id = serializers.UUIDField()
    type = serializers.CharField(help_text="The stable wire name, e.g. `orders.OrderConfirmed`.")
    version = serializers.IntegerField(help_text="The schema version of `payload`.")
    occurred_at = serializers.DateTimeField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.CharField()
    correlation_id = serializers.UUIDField(help_text="The business workflow this event belongs to.")
    causation_id = serializers.UUIDField(allow_null=True, help_text="The event or request that caused it.")
    payload = serializers.DictField(help_text="The event's fields, in the shape of its `version`.")

    class Meta:
        ref_name = "EventEnvelope"


class HeldBySerializer(serializers.Serializer):
    """The earlier delivery of the same handler and aggregate that a held delivery waits for."""

    delivery_id = serializers.IntegerField(source="id")
    event_id = serializers.UUIDField(source="event.event_id", help_text="The earlier event it belongs to.")
    handler = serializers.CharField()
    status = serializers.ChoiceField(
        choices=Delivery.Status.choices,
        help_text="`dead`: held until that one is retried (and done) or discarded; "
        "`pending` or `dispatched`: waiting its turn.",
    )

    class Meta:
        ref_name = "HeldBy"


class DeliverySummarySerializer(serializers.Serializer):
    """One handler's delivery of an event, as an event's timeline shows it.

    ``held_by`` is read from the context's ``holds`` (``outbox.selectors.deliveries_held``
    of the deliveries shown), so that a page costs one query for all of them.
    """

    id = serializers.IntegerField()
    handler = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    held_by = serializers.SerializerMethodField(
        help_text="For a handler that takes an aggregate's events in order: the earlier delivery this pending one "
        "waits for; null when it waits for none."
    )

    class Meta:
        ref_name = "DeliverySummary"

    @extend_schema_field(HeldBySerializer(allow_null=True))
    def get_held_by(self, delivery: Delivery) -> dict | None:
        holder = self.context.get("holds", {}).get(delivery.id)
        return HeldBySerializer(holder).data if holder else None


class CausedEventsSerializer(EventEnvelopeSerializer):
    """An event with the ids of the events it caused: with ``causation_id``, the edges of its workflow's tree.

    ``children`` is read from the context's ``children`` (``outbox.selectors.caused_events``
    of the events shown), so that a page costs one query for all of them.
    """

    children = serializers.SerializerMethodField(
        help_text="The `event_id`s of the events it caused (whose `causation_id` is its `event_id`), oldest first; "
        "with `causation_id` they are the edges of the workflow's causal tree."
    )

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_children(self, event: OutboxEvent) -> list[UUID]:
        return self.context.get("children", {}).get(event.event_id, [])
