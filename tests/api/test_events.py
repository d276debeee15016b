"""The event log over REST: ``GET /api/events/`` (staff with ``outbox.view_outboxevent``) and the causal links
(``causation_id``, ``children``) of ``GET /api/orders/{id}/events/``."""

import datetime as dt
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from tests.factories import make_product, place_order
from tests.outbox.probe.events import Flaked, Pinged
from tests.support.users import make_user, token_client
from tests.support.workflow import run_until_settled

pytestmark = pytest.mark.django_db

EVENTS_URL = "/api/events/"


@pytest.fixture
def viewer(db):
    """Staff allowed to read the event log, and nothing more."""
    return make_user("vera", staff=True, perms=("outbox.view_outboxevent",))


def iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def raw_event(*, occurred_at: dt.datetime, type: str = "probe.Pinged", **envelope: object) -> OutboxEvent:
    """A stored event as any writer could have left it, at the time given."""
    fields = {"aggregate_type": "probe.Thing", "aggregate_id": str(uuid.uuid4()), "correlation_id": uuid.uuid4()}
    return OutboxEvent.objects.create(
        type=type,
        version=1,
        occurred_at=occurred_at,
        payload={"thing_id": str(uuid.uuid4())},
        relayed_at=occurred_at,
        **{**fields, **envelope},
    )


# who may search the log


def test_without_a_token_it_is_401():
    response = APIClient().get(EVENTS_URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_a_customer_is_refused():
    response = token_client(make_user("carol")).get(EVENTS_URL)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Searching the event log needs the outbox.view_outboxevent permission.",
        "code": "permission_denied",
    }


def test_staff_need_the_permission_to_view_events():
    response = token_client(make_user("sam", staff=True)).get(EVENTS_URL)
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Searching the event log needs the outbox.view_outboxevent permission.",
        "code": "permission_denied",
    }


# what it answers


def test_a_workflow_reads_in_log_order_with_each_events_deliveries_and_children(viewer):
    # given a workflow of three events (the second caused by the first) and another workflow's event
    correlation = uuid.uuid4()
    with transaction.atomic():
        first = publish(Pinged(thing_id=uuid.uuid4()), correlation_id=correlation)
        second = publish(Flaked(thing_id=uuid.uuid4()), correlation_id=correlation, causation_id=first.event_id)
        third = publish(Pinged(thing_id=uuid.uuid4()), correlation_id=correlation)
        publish(Pinged(thing_id=uuid.uuid4()))
    # when
    response = token_client(viewer).get(EVENTS_URL, {"correlation_id": str(correlation)})
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["event_id"] for row in body["results"]] == [str(e.event_id) for e in (first, second, third)]
    row = body["results"][0]
    first.refresh_from_db()
    assert {key: row[key] for key in ("position", "type", "correlation_id", "causation_id", "relayed_at")} == {
        "position": first.id,
        "type": "probe.Pinged",
        "correlation_id": str(correlation),
        "causation_id": None,
        "relayed_at": iso(first.relayed_at),
    }
    assert row["children"] == [str(second.event_id)]
    assert body["results"][1]["causation_id"] == str(first.event_id)
    assert body["results"][1]["children"] == []
    expected = [
        {"id": d.id, "handler": d.handler, "status": "dispatched", "attempts": 0, "held_by": None}
        for d in Delivery.objects.filter(event=first).order_by("id")
    ]
    assert row["deliveries"] == expected


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "probe.Flaked"}, ["flaked"]),
        ({"aggregate_type": "probe.Thing", "aggregate_id": "thing-1"}, ["early", "flaked"]),
        ({"aggregate_id": "thing-1", "type": "probe.Pinged"}, ["early"]),
        ({"since": "2026-03-01T12:00:00Z"}, ["flaked", "late"]),
        ({"until": "2026-03-01T13:00:00+01:00"}, ["early"]),  # exclusive: 12:00 UTC is not before itself
        ({"since": "2026-03-01T11:00:00Z", "until": "2026-03-01T12:30:00Z"}, ["flaked"]),
        ({"type": "orders.OrderShipped"}, []),
    ],
)
def test_each_filter_narrows_the_log(viewer, filters, expected):
    # given events at 10:00, 12:00 and 14:00 UTC
    noon = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    made = {
        "early": raw_event(occurred_at=noon - dt.timedelta(hours=2), aggregate_id="thing-1"),
        "flaked": raw_event(occurred_at=noon, type="probe.Flaked", aggregate_id="thing-1"),
        "late": raw_event(occurred_at=noon + dt.timedelta(hours=2), aggregate_id="thing-2"),
    }
    names = {str(event.event_id): name for name, event in made.items()}
    # when
    response = token_client(viewer).get(EVENTS_URL, filters)
    # then
    assert response.status_code == 200, response.json()
    assert [names[row["event_id"]] for row in response.json()["results"]] == expected


@pytest.mark.parametrize("name", ["type", "correlation_id", "aggregate_type", "aggregate_id", "since", "until"])
def test_a_blank_filter_is_a_400_naming_it_not_the_whole_log(viewer, name):
    raw_event(occurred_at=timezone.now())
    response = token_client(viewer).get(f"{EVENTS_URL}?{name}=")
    assert response.status_code == 400
    assert response.json()["errors"] == {name: ["Blank: give a value, or leave the filter out."]}


def test_the_log_is_paginated_in_a_fixed_number_of_queries(viewer):
    # given five events of one workflow, each with three deliveries
    correlation = uuid.uuid4()
    with transaction.atomic():
        for _ in range(5):
            publish(Pinged(thing_id=uuid.uuid4()), correlation_id=correlation)
    client = token_client(viewer)
    # when
    with CaptureQueriesContext(connection) as small:
        first = client.get(EVENTS_URL, {"correlation_id": str(correlation), "page_size": 2}).json()
    with CaptureQueriesContext(connection) as large:
        client.get(EVENTS_URL, {"correlation_id": str(correlation), "page_size": 5})
    # then
    assert (first["count"], len(first["results"])) == (5, 2)
    assert "page=2" in first["next"]
    assert len(small) == len(large)


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        ({"correlation_id": "order-42"}, "correlation_id", "Must be a valid UUID."),
        ({"since": "2026-03-01T12:00:00"}, "since", "no UTC offset"),
        ({"until": "yesterday"}, "until", "Give an ISO 8601 date and time"),
        ({"since": "2026-03-01T12:00:00Z", "until": "2026-03-01T12:00:00Z"}, "until", "later than `since`"),
        ({"type": "x" * 201}, "type", "no more than 200 characters"),
        ({"type": "probe.\x00"}, "type", "Null characters are not allowed."),
        ({"correlation": str(uuid.uuid4())}, "correlation", "Unknown filter: the filters are type, correlation_id"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(viewer, query, field, says):
    response = token_client(viewer).get(EVENTS_URL, query)
    assert response.status_code == 400
    body = response.json()
    assert list(body["errors"]) == [field]
    assert says in body["errors"][field][0]


# an order's events, as a tree a client can draw


@pytest.mark.django_db(databases=["default", "sandbox"])
def test_an_orders_events_name_their_cause_and_the_events_they_caused_on_every_page():
    # given a shipped order (its handlers run in this process)
    customer = make_user("carol")
    order = place_order(customer=customer, lines=[(make_product(), 1)], confirm=True)
    run_until_settled(order.correlation_id)
    assert Order.objects.get(pk=order.pk).status == "shipped"
    # when the owner reads them two at a time
    client, rows, url = token_client(customer), [], f"/api/orders/{order.id}/events/?page_size=2"
    while url:
        page = client.get(url).json()
        rows += page["results"]
        url = page["next"]
    # then each names the events it caused, whichever page they are on: the edges of the tree
    events = list(OutboxEvent.objects.filter(correlation_id=order.correlation_id).order_by("id"))
    assert [row["event_id"] for row in rows] == [str(e.event_id) for e in events]
    for row, event in zip(rows, events, strict=True):
        caused = [str(e.event_id) for e in events if e.causation_id == event.event_id]
        assert (row["causation_id"], row["children"]) == (
            str(event.causation_id) if event.causation_id else None,
            caused,
        )
    confirmed = next(row for row in rows if row["type"] == "orders.OrderConfirmed")
    assert {r["type"] for r in rows if r["event_id"] in confirmed["children"]} >= {
        "payments.PaymentProcessed",
        "inventory.InventoryReserved",
    }
