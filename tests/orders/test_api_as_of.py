"""GET /api/orders/{id}/?as_of=...: an order as it was at a past time, for its owner and with orders.view_order."""

import datetime as dt
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import checks

from orders.models import Order
from orders.services import order_cancel
from outbox.models import OutboxEvent
from tests.factories import ADDRESS, make_product, place_order
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

MICROSECOND = dt.timedelta(microseconds=1)


def order_url(order: Order) -> str:
    return f"/api/orders/{order.id}/"


def z(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def cancelled(alice) -> Order:
    """Alice's order: placed, confirmed, then cancelled by her before payments or inventory answered."""
    order = place_order(customer=alice, lines=[(make_product(price="3.20"), 2)], confirm=True)
    order_cancel(order_id=order.id, reason="Ordered twice.", by_user_id=order.customer_id)
    order.refresh_from_db()
    return order


def test_the_owner_reads_her_order_as_it_was_between_two_changes(alice, cancelled):
    # given a time after the order was confirmed and before it was cancelled
    between = cancelled.confirmed_at + (cancelled.cancelled_at - cancelled.confirmed_at) / 2
    # when
    response = token_client(alice).get(order_url(cancelled), {"as_of": z(between)})
    # then it is the order detail as it was then, with the time it is for
    assert response.status_code == 200, response.json()
    line = cancelled.lines.get()
    assert response.json() == {
        "id": str(cancelled.id),
        "status": "confirmed",
        "customer": "alice",
        "lines": [{"sku": line.sku, "name": line.name, "quantity": 2, "unit_price": "3.20"}],
        "total": {"amount": "6.40", "currency": "EUR"},
        "payment_status": "pending",
        "inventory_status": "pending",
        "shipment": None,
        "shipping_address": {**ADDRESS, "line2": ""},
        "created_at": z(cancelled.created_at),
        "confirmed_at": z(cancelled.confirmed_at),
        "cancelled_at": None,
        "shipped_at": None,
        "cancel_reason": None,
        "as_of": z(between),
    }


def test_as_of_each_change_the_order_is_as_that_change_left_it(alice, cancelled):
    # when / then: the order's own times are the instants its changes count from
    client = token_client(alice)

    def status_at(at: dt.datetime) -> str:
        return client.get(order_url(cancelled), {"as_of": z(at)}).json()["status"]

    assert status_at(cancelled.created_at) == "draft"
    assert status_at(cancelled.confirmed_at - MICROSECOND) == "draft"
    assert status_at(cancelled.confirmed_at) == "confirmed"
    assert status_at(cancelled.cancelled_at - MICROSECOND) == "confirmed"
    assert status_at(cancelled.cancelled_at) == "cancelled"


def test_as_of_now_the_order_is_its_detail_now_with_the_time(alice, cancelled):
    # given
    client = token_client(alice)
    before = timezone.now()
    # when
    now = client.get(order_url(cancelled), {"as_of": z(before)}).json()
    detail = client.get(order_url(cancelled)).json()
    # then
    assert {key: value for key, value in now.items() if key != "as_of"} == detail
    assert (detail["status"], detail["payment_status"], detail["cancel_reason"]) == (
        "cancelled",
        "cancelled",
        "Ordered twice.",
    )
    assert "as_of" not in detail


def test_a_time_in_the_future_is_answered_as_now_and_says_so(alice, cancelled):
    # given
    next_year = timezone.now() + dt.timedelta(days=365)
    # when
    response = token_client(alice).get(order_url(cancelled), {"as_of": z(next_year)})
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert dt.datetime.fromisoformat(response.json()["as_of"]) <= timezone.now()


def test_a_time_in_another_offset_is_the_same_instant_given_back_in_utc(alice, cancelled):
    in_paris = cancelled.confirmed_at.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
    body = token_client(alice).get(order_url(cancelled), {"as_of": in_paris}).json()
    assert (body["status"], body["as_of"]) == ("confirmed", z(cancelled.confirmed_at))


def test_a_time_before_the_order_was_created_is_404_saying_when_it_was(alice, cancelled):
    # when
    response = token_client(alice).get(order_url(cancelled), {"as_of": z(cancelled.created_at - MICROSECOND)})
    # then
    assert response.status_code == 404
    assert response.json() == {
        "detail": f"Order {cancelled.id} did not exist yet at {z(cancelled.created_at - MICROSECOND)}: "
        f"it was created at {z(cancelled.created_at)}.",
        "code": "not_found",
    }


def test_staff_read_any_order_as_of_a_time(alice, cancelled):
    staff = make_user("sam", staff=True, perms=("orders.view_order",))
    response = token_client(staff).get(order_url(cancelled), {"as_of": z(cancelled.confirmed_at)})
    assert response.status_code == 200
    assert (response.json()["customer"], response.json()["status"]) == ("alice", "confirmed")


def test_another_customer_is_told_the_order_does_not_exist_at_any_time(alice, cancelled):
    # when bob asks for alice's order as of a time it existed
    response = token_client(make_user("bob")).get(order_url(cancelled), {"as_of": z(cancelled.confirmed_at)})
    # then it is the 404 of an order that does not exist, saying nothing of it
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {cancelled.id}.", "code": "not_found"}


def test_without_credentials_it_is_401(cancelled):
    response = APIClient().get(order_url(cancelled), {"as_of": z(cancelled.confirmed_at)})
    assert response.status_code == 401


NAIVE = (
    "This time has no UTC offset, so it is ambiguous: give an ISO 8601 date and time with its UTC offset, "
    "e.g. 2026-03-01T12:00:00Z or 2026-03-01T13:00:00+01:00."
)
MALFORMED = (
    "Give an ISO 8601 date and time with its UTC offset, e.g. 2026-03-01T12:00:00Z or "
    "2026-03-01T13:00:00+01:00. (In a URL, write + as %2B.)"
)
OUT_OF_RANGE = "This time is out of range: in UTC it falls before 0001-01-01 or after 9999-12-31."


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("2026-03-01T12:00:00", NAIVE),
        ("2026-03-01", MALFORMED),
        ("yesterday", MALFORMED),
        ("2026-13-01T12:00:00Z", MALFORMED),
        ("2026-03-01T12:00:00 01:00", MALFORMED),  # a "+" sent unencoded arrives as a space
        ("0001-01-01T00:00:00+01:00", OUT_OF_RANGE),
    ],
)
def test_an_as_of_that_is_not_an_iso_time_with_an_offset_is_400_naming_it(alice, cancelled, as_of, message):
    # when
    response = token_client(alice).get(order_url(cancelled), {"as_of": as_of})
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Invalid input: as_of: {message}",
        "code": "invalid",
        "errors": {"as_of": [message]},
    }


# the schema


def test_the_schema_declares_as_of_and_what_the_order_detail_answers_with_it():
    # given
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    retrieve = schema["paths"]["/api/orders/{order_id}/"]["get"]
    # then the query parameter, optional, a date and time
    [as_of] = [p for p in retrieve["parameters"] if p["name"] == "as_of"]
    assert (as_of["in"], as_of.get("required", False), as_of["schema"]) == (
        "query",
        False,
        {"type": "string", "format": "date-time"},
    )
    assert "2026-03-01T12:00:00Z" in as_of["description"]
    # and the answer: the order's fields, with as_of (only when asked for), a 400 and a 404 that say when
    detail = schema["components"]["schemas"]["OrderDetail"]
    assert set(schema["components"]["schemas"]["Order"]["properties"]) | {"as_of"} == set(detail["properties"])
    assert "as_of" not in detail["required"]
    assert retrieve["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/OrderDetail")
    assert "as_of" in retrieve["responses"]["400"]["description"]
    assert "did not exist yet" in retrieve["responses"]["404"]["description"]


class Asked:
    """The order the fuzzed requests ask for, and times in its life: filled in by the ``owner_headers`` fixture."""

    order_id: str = ""
    times: tuple[str, ...] = ()


schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())
# As tests/api/test_schemathesis.py checks every route. (Not the rejection of schema-violating requests: the path
# hook below swaps an invalid order id for a real one, and no route refuses an unknown query parameter.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@schema.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Always the owner's order: the answers worth checking are the order's, not 404s for random ids."""
    return {**path_parameters, "order_id": Asked.order_id} if path_parameters and Asked.order_id else path_parameters


@schema.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy:
    """Half the time (or so), an as_of within the order's life instead of a random one."""
    if not isinstance(query, dict) or not Asked.times:
        return st.just(query)
    return st.sampled_from(Asked.times).map(lambda at: {**query, "as_of": at}) | st.just(query)


@pytest.fixture
def owner_headers(alice, cancelled, in_process_requests) -> dict[str, str]:
    Asked.order_id = str(cancelled.id)
    Asked.times = tuple(
        z(at) for at in (cancelled.created_at, cancelled.confirmed_at, cancelled.cancelled_at, timezone.now())
    )
    yield {"Authorization": f"Token {Token.objects.create(user=alice).key}"}
    Asked.order_id, Asked.times = "", ()


@schema.include(operation_id="orders_retrieve").parametrize()
@settings(max_examples=40, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_order_detail_as_of_a_time_answers_as_its_schema_says(case, owner_headers):
    # when a generated request is sent by the order's owner: then no 5xx, and status, headers and body are as documented
    case.call_and_validate(headers=owner_headers, checks=CHECKS)


def store_an_event_from_a_newer_release(order: Order) -> OutboxEvent:
    """A payment event of the order's workflow in a version this code does not know (as during a deploy)."""
    return OutboxEvent.objects.create(
        type="payments.PaymentProcessed",
        version=99,
        occurred_at=timezone.now(),
        aggregate_type="payments.Payment",
        aggregate_id=str(order.id),
        correlation_id=order.correlation_id,
        payload={"shape": "of the future"},
    )


def test_a_history_holding_an_event_this_release_cannot_read_is_503_saying_which(alice):
    # given alice's confirmed order, and an event of its workflow written by a newer release
    order = place_order(customer=alice, lines=[(make_product(), 1)], confirm=True)
    unreadable = store_an_event_from_a_newer_release(order)
    # when she asks for it as of now
    response = token_client(alice).get(order_url(order), {"as_of": z(timezone.now())})
    # then 503, naming the event and what to do; the order without as_of still answers
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "unavailable"
    assert f"event {unreadable.event_id} (payments.PaymentProcessed v99)" in body["detail"]
    assert "try again once every process runs the release that wrote it" in body["detail"]
    assert token_client(alice).get(order_url(order)).status_code == 200
