"""Migration orders 0004 seals the personal data of events written in the clear before this release."""

import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction

from customers.events import customer_subject
from orders.models import Order
from outbox import personal
from outbox.events import registry
from outbox.models import OutboxEvent
from tests.factories import ADDRESS, place_order

pytestmark = pytest.mark.django_db

migration = importlib.import_module("orders.migrations.0004_seal_personal_data_in_the_log")


def test_legacy_events_get_their_personal_fields_sealed_and_decode_to_the_same_values():
    order = place_order(confirm=True)
    email = order.customer_email
    legacy = OutboxEvent.objects.create(  # as an earlier release stored it: in the clear
        type="orders.OrderShipped",
        version=1,
        occurred_at=order.created_at,
        aggregate_type="orders.Order",
        aggregate_id=str(order.id),
        correlation_id=order.correlation_id,
        payload={
            "order_id": str(order.id),
            "carrier": "C",
            "tracking_number": "T",
            "estimated_delivery": "2026-12-09",
            "customer_email": email,
        },
    )
    before = registry.decode(legacy.type, legacy.version, legacy.payload)
    # when
    with connection.schema_editor() as editor:
        migration.seal_the_log(apps, editor)
    # then
    legacy.refresh_from_db()
    assert email not in str(legacy.payload)
    assert legacy.payload["customer_email"]["sealed_for"] == customer_subject(order.customer_id)
    assert registry.decode(legacy.type, legacy.version, legacy.payload) == before
    # sealed ones are left as they were, and the log refuses changes again
    confirmed = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    assert confirmed.payload["shipping_address"]["sealed_for"] == customer_subject(order.customer_id)
    assert ADDRESS["line1"] not in str(confirmed.payload)
    # forgetting now erases the legacy event's email too
    personal.forget_subject(customer_subject(order.customer_id))
    assert registry.decode(legacy.type, legacy.version, legacy.payload).customer_email == ""
    with pytest.raises(IntegrityError, match="append-only log: the content of event"), transaction.atomic():
        OutboxEvent.objects.filter(pk=legacy.pk).update(payload={})


def test_the_card_token_of_a_finished_order_is_shredded_and_of_one_in_flight_kept():
    shipped, in_flight = place_order(confirm=True), place_order(confirm=True)
    Order.objects.filter(pk=shipped.pk).update(status="shipped")
    for order in (shipped, in_flight):
        OutboxEvent.objects.create(
            type="orders.OrderConfirmed",
            version=2,
            occurred_at=order.created_at,
            aggregate_type="orders.Order",
            aggregate_id=str(order.id),
            correlation_id=order.correlation_id,
            payload={
                "order_id": str(order.id),
                "total": {"amount": "1.00", "currency": "EUR"},
                "payment_token": "tok_visa",
            },
        )
    # when
    with connection.schema_editor() as editor:
        migration.seal_the_log(apps, editor)
    # then
    for order, token in (
        (shipped, ""),
        (in_flight, "tok_visa"),
    ):  # both of its OrderConfirmed (ours and the legacy one)
        rows = OutboxEvent.objects.filter(type="orders.OrderConfirmed", aggregate_id=str(order.id))
        assert [registry.decode(row.type, row.version, row.payload).payment_token for row in rows] == [token, token]
    assert "tok_visa" not in str(list(OutboxEvent.objects.values_list("payload", flat=True)))
