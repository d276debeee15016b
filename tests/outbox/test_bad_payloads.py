"""Stored events whose payload cannot be read: each is a dead letter saying why, and the events around them flow.

Rows are written straight into ``outbox_event``, as older, newer or broken
code (or a hand-edited row) could have left them, for event types that are
registered and subscribed to, interleaved in one transaction with valid events
of the probe's types. A real relay and worker deliver them. A bad row's every
delivery must be dead after its one attempt, with a ``last_error`` that names
the type, its version and each field that is wrong; every valid event's
deliveries must be done.
"""

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models import JSONField, Value
from django.utils import timezone
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from outbox.dispatch import kick_relay_on_commit
from outbox.events import DomainEvent, EventDecodeError, Money, registry
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from outbox.runner import run_deliveries
from outbox.subscriptions import subscriptions
from tests.outbox.probe.events import Broke, Flaked, Pinged, Priced, Slept, Stepped
from tests.support.processes import wait_for


@dataclass(frozen=True)
class RawRow:
    """An outbox row as something other than ``publish`` wrote it."""

    what: str  # how it is bad, for a failure message
    type: str
    version: int
    payload: Any


def valid_events() -> list[DomainEvent]:
    """One valid event of each probe type whose handler only records that it ran."""
    thing = uuid.uuid4
    return [
        Pinged(thing_id=thing(), seq=7),
        Priced(thing_id=thing(), price=Money(amount=Decimal("9.99"), currency="EUR")),
        Stepped(thing_id=thing(), seq=1),
        Flaked(thing_id=thing()),
        Slept(thing_id=thing(), seconds=0),
        Broke(thing_id=thing()),
    ]


def spoiled(event: DomainEvent) -> list[RawRow]:
    """The ways a stored payload of ``event`` goes bad: fields missing, of the wrong type, truncated, nested."""
    payload, name, version = event.model_dump(mode="json"), event.event_type, event.version
    text = json.dumps(payload)
    rows = [
        RawRow("no fields", name, version, {}),
        RawRow("JSON null", name, version, None),
        RawRow("an unknown field", name, version, {**payload, "surprise": 1}),
        RawRow("nested one level too deep", name, version, {"payload": payload}),
        RawRow("a list, not an object", name, version, [payload]),
        RawRow("truncated JSON text, stored as a string", name, version, text[: len(text) // 2]),
        RawRow("a version newer than the code", name, version + 1, payload),
    ]
    for field, value in payload.items():
        rows.append(RawRow(f"{field} missing", name, version, {k: v for k, v in payload.items() if k != field}))
        rows.append(RawRow(f"{field} a list", name, version, {**payload, field: [value]}))
        rows.append(RawRow(f"{field} truncated", name, version, {**payload, field: _truncated(value)}))
    return [row for row in rows if decode_error(row) is not None]  # a truncated free-text field still reads


def _truncated(value: Any) -> Any:
    if isinstance(value, dict):  # an object cut off after its first field
        return dict(list(value.items())[:1])
    return str(value)[: len(str(value)) // 2]


def decode_error(row: RawRow) -> str | None:
    """What the runner says when it cannot read ``row``, or None if it can."""
    try:
        registry.decode(row.type, row.version, row.payload)
    except EventDecodeError as exc:
        return str(exc)
    return None


def wrong_fields(row: RawRow) -> list[str]:
    """The names pydantic gives the fields it refused (empty when the payload is not an object at all)."""
    try:
        registry.get(row.type).model_validate(row.payload)
    except ValidationError as exc:
        return [str(error["loc"][0]) for error in exc.errors() if error["loc"]]
    return []


def store(rows: list[RawRow | DomainEvent]) -> list[tuple[RawRow | DomainEvent, OutboxEvent]]:
    """Write every row in one transaction, in order: valid events through ``publish``, raw rows as they are."""
    with transaction.atomic():
        stored = [(row, _store_one(row)) for row in rows]
        kick_relay_on_commit()
    return stored


def _store_one(row: RawRow | DomainEvent) -> OutboxEvent:
    if isinstance(row, DomainEvent):
        return publish(row)
    return OutboxEvent.objects.create(
        type=row.type,
        version=row.version,
        occurred_at=timezone.now(),
        aggregate_type="probe.Thing",
        aggregate_id=str(uuid.uuid4()),
        correlation_id=uuid.uuid4(),
        payload=Value(None, JSONField()) if row.payload is None else row.payload,  # JSON null, not SQL NULL
    )


def interleaved(bad: list[RawRow], good: list[DomainEvent]) -> list[RawRow | DomainEvent]:
    rows: list[RawRow | DomainEvent] = []
    for index, row in enumerate(bad):
        rows.append(row)
        if index % 3 == 0:
            rows.append(good[(index // 3) % len(good)].model_copy(update={"thing_id": uuid.uuid4()}))
    return [*rows, *good]


def wait_until_all_finished(stored: list[tuple[Any, OutboxEvent]], live_outbox, timeout: float = 60) -> None:
    """Every event fanned out, and every delivery of each done or dead."""
    events = [event for _, event in stored]

    def finished() -> bool:
        deliveries = Delivery.objects.filter(event__in=events)
        fanned_out = not OutboxEvent.objects.filter(id__in=[e.id for e in events], relayed_at__isnull=True).exists()
        return fanned_out and not deliveries.exclude(status__in=["done", "dead"]).exists()

    wait_for(finished, timeout=timeout, what=live_outbox.logs)


def assert_dead_letters_say_why(stored: list[tuple[Any, OutboxEvent]]) -> None:
    for row, event in stored:
        if isinstance(row, DomainEvent):
            continue
        event.refresh_from_db()  # as jsonb gave it back to the worker: its objects' keys in jsonb's order
        row = RawRow(row.what, row.type, row.version, event.payload)
        deliveries = list(Delivery.objects.filter(event=event))
        assert len(deliveries) == len(subscriptions.for_type(row.type)), row
        for delivery in deliveries:
            assert (delivery.status, delivery.attempts) == ("dead", 1), (row, delivery.last_error)
            assert delivery.last_error == decode_error(row), row
            assert delivery.last_error.startswith(f"{row.type} v{row.version} "), row
            for field in wrong_fields(row):
                assert field in delivery.last_error, (row, field, delivery.last_error)


def assert_valid_events_delivered(stored: list[tuple[Any, OutboxEvent]]) -> None:
    for row, event in stored:
        if isinstance(row, DomainEvent):
            deliveries = Delivery.objects.filter(event=event)
            assert {d.status for d in deliveries} == {"done"}, (row, [(d.handler, d.last_error) for d in deliveries])


@pytest.mark.django_db(transaction=True)
@pytest.mark.workers
def test_spoiled_payloads_are_dead_letters_saying_why_and_valid_events_around_them_are_delivered(live_outbox):
    # given every way a payload can go bad, for each probe type, between valid events
    good = valid_events()
    bad = [row for event in good for row in spoiled(event)]
    assert len(bad) > 50
    # when they are written together and delivered
    stored = store(interleaved(bad, good))
    wait_until_all_finished(stored, live_outbox)
    # then
    assert_dead_letters_say_why(stored)
    assert_valid_events_delivered(stored)


# What a jsonb column holds: no NaN or infinity, no NUL and no lone surrogate in a string.
json_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4),
    max_leaves=12,
)


def subscribed_types() -> list[str]:
    return [name for name in registry.names() if subscriptions.for_type(name)]


@st.composite
def random_rows(draw: st.DrawFn) -> RawRow:
    """A random payload for any subscribed type (its current version), that does not read as that type."""
    name = draw(st.sampled_from(subscribed_types()))
    fields = list(registry.get(name).model_fields)
    # objects whose keys are mostly the type's own field names, so that some fields come close to valid
    keyed = st.dictionaries(st.sampled_from(fields) | json_text, json_values, max_size=len(fields) + 1)
    row = RawRow("random", name, registry.get(name).version, draw(keyed | json_values))
    assume(decode_error(row) is not None)
    return row


@pytest.mark.django_db(transaction=True)
@pytest.mark.workers
@settings(
    max_examples=8,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example runs through real processes
    suppress_health_check=list(HealthCheck),
)
@given(bad=st.lists(random_rows(), min_size=20, max_size=30))
def test_random_payloads_of_every_subscribed_type_are_dead_letters_saying_why(live_outbox, bad):
    # given random payloads of registered, subscribed types, between valid events
    stored = store(interleaved(bad, valid_events()))
    # when they are delivered
    wait_until_all_finished(stored, live_outbox)
    # then
    assert_dead_letters_say_why(stored)
    assert_valid_events_delivered(stored)


@pytest.mark.django_db
def test_an_old_payload_its_upcaster_cannot_read_is_a_dead_letter_saying_why():
    # given a v1 probe.Priced row without the price its upcaster to v2 reads
    with transaction.atomic():
        row = _store_one(RawRow("v1 without price", "probe.Priced", 1, {"thing_id": str(uuid.uuid4())}))
    fan_out(batch_size=10)
    [delivery] = Delivery.objects.filter(event=row)
    Delivery.objects.filter(id=delivery.id).update(status="dispatched")
    # when
    run_deliveries([delivery.id])
    # then
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("dead", 1)
    assert delivery.last_error == "probe.Priced v1 cannot be upcast from v1 to v2: KeyError: 'price'"
    assert delivery.error_type == "outbox.events.EventDecodeError"
