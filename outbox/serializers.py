"""How the outbox's records look in the REST API; shared by every view that shows events."""

from rest_framework import serializers

from .models import Delivery


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


class DeliverySummarySerializer(serializers.Serializer):
    """One handler's delivery of an event, as an event's timeline shows it."""

    handler = serializers.CharField()
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()

    class Meta:
        ref_name = "DeliverySummary"
