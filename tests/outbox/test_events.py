import uuid
from decimal import Decimal
from typing import ClassVar

import pytest
from django.core.exceptions import ImproperlyConfigured

from outbox.events import DomainEvent, EventDecodeError, EventRegistryError, Money, registry
from outbox.subscriptions import Subscription, SubscriptionRegistry
from tests.outbox.probe.events import Pinged, Priced


def test_an_event_is_frozen():
    event = Pinged(thing_id=uuid.uuid4())
    with pytest.raises(Exception, match="frozen"):
        event.seq = 3


def test_registering_a_wire_name_twice_is_an_error():
    with pytest.raises(EventRegistryError, match="already registered"):

        class Impostor(DomainEvent):
            event_type: ClassVar[str] = "probe.Pinged"
            aggregate_type: ClassVar[str] = "probe.Thing"
            aggregate_id_field: ClassVar[str] = "thing_id"

            thing_id: uuid.UUID


def test_a_v1_payload_is_upcast_to_the_current_class():
    thing = uuid.uuid4()
    event = registry.decode("probe.Priced", 1, {"thing_id": str(thing), "price": 12.5, "currency": "eur"})
    assert event == Priced(thing_id=thing, price=Money(amount=Decimal("12.5"), currency="EUR"))
    assert isinstance(event.price.amount, Decimal)


def test_decoding_refuses_what_it_cannot_read():
    with pytest.raises(EventDecodeError, match=r"Unknown event type 'probe\.Nope'"):
        registry.decode("probe.Nope", 1, {})
    with pytest.raises(EventDecodeError, match="newer than this code knows"):
        registry.decode("probe.Priced", 3, {})
    with pytest.raises(EventDecodeError, match="payload is invalid"):
        registry.decode("probe.Pinged", 1, {"thing_id": "not-a-uuid"})
    with pytest.raises(EventDecodeError, match=r"No upcaster from probe\.Pinged v0"):
        registry.upcast("probe.Pinged", 0, {})


def test_money_round_trips_through_json_without_floats():
    event = Priced(thing_id=uuid.uuid4(), price=Money(amount=Decimal("0.10"), currency="usd"))
    payload = event.model_dump(mode="json")
    assert payload["price"] == {"amount": "0.10", "currency": "USD"}
    assert Priced.model_validate(payload) == event


def test_a_subscription_to_an_unregistered_type_is_a_startup_error():
    with pytest.raises(ImproperlyConfigured, match="which no event class registers"):
        SubscriptionRegistry().add(Subscription("probe.NeverDefined", lambda e, env: None), app_label="probe")


def test_subscriptions_take_their_name_and_queue_from_the_app():
    def notice(event, envelope):
        return None

    sub = SubscriptionRegistry().add(Subscription(Pinged, notice), app_label="shipping")
    assert (sub.name, sub.queue, sub.event_type) == ("shipping.notice", "shipping", "probe.Pinged")
