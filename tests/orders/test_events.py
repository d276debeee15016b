"""OrderConfirmed is v2: a stored v1 payload still reads, upcast to the current shape."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.events import OrderConfirmed
from outbox.events import Money, registry
from outbox.models import OutboxEvent
from outbox.runner import envelope_of

pytestmark = pytest.mark.django_db


def test_a_v1_order_confirmed_is_upcast_to_v2_with_its_float_total_as_exact_money():
    # given a payload as v1 code wrote it
    order_id = uuid.uuid4()
    v1 = {"order_id": str(order_id), "order_total": 19.99, "currency": "eur"}
    # when
    event = registry.decode("orders.OrderConfirmed", 1, v1)
    # then
    assert isinstance(event, OrderConfirmed)
    assert event.order_id == order_id
    assert event.total == Money(amount=Decimal("19.99"), currency="EUR")
    assert isinstance(event.total.amount, Decimal)
    assert event.currency == "EUR"
    assert (event.lines, event.customer_id, event.shipping_address, event.payment_token) == ((), None, None, "")


def test_a_stored_v1_row_reads_back_as_the_current_class():
    # given a v1 row in the event log
    row = OutboxEvent.objects.create(
        type="orders.OrderConfirmed",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="orders.Order",
        aggregate_id=str(uuid.uuid4()),
        correlation_id=uuid.uuid4(),
        payload={"order_id": str(uuid.uuid4()), "order_total": 0.1 + 0.2, "currency": "GBP"},
    )
    # when
    event = registry.decode(row.type, row.version, row.payload)
    # then: the float's shortest repr, not binary noise rounded away silently
    assert event.total == Money(amount=Decimal("0.30000000000000004"), currency="GBP")
    assert envelope_of(row).version == 1


def test_order_confirmed_v2_round_trips_through_json():
    # given
    event = OrderConfirmed(order_id=uuid.uuid4(), total=Money(amount=Decimal("42.60"), currency="EUR"))
    # when
    payload = event.model_dump(mode="json")
    # then
    assert payload["total"] == {"amount": "42.60", "currency": "EUR"}
    assert registry.decode("orders.OrderConfirmed", 2, payload) == event
