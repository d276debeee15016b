"""How the outbox's records look in the REST API; shared by every view that shows events."""

from uuid import UUID

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import Delivery, OutboxEvent


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
