"""The orders routes: place, list, read, confirm, cancel, and an order's events.

Handlers do not run here (no worker): what happens after a confirmation is
driven through the saga's own functions, as the orders handlers would.
"""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from orders import saga
from orders.models import Order
from orders.services import order_cancel, order_confirm
from outbox.events import Money
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from payments.events import PaymentRefunded
from tests.factories import ADDRESS, make_product, place_order
from tests.outbox.probe.events import Stepped
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/orders/"


def order_url(order_id, action: str = "") -> str:
    return f"/api/orders/{order_id}/{action + '/' if action else ''}"


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@pytest.fixture
def alice(db):
    return make_user("alice", email="alice@customers.example")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def pen(db):
    return make_product(price="1.20", on_hand=100)


@pytest.fixture
def lamp(db):
    return make_product(price="39.00", on_hand=10)


def new_order(*lines, **overrides) -> dict:
    """A request body for POST /api/orders/."""
    body = {
        "lines": [{"sku": product.sku, "quantity": quantity} for product, quantity in lines],
        "shipping_address": dict(ADDRESS),
        "payment_token": "tok_visa",
    }
    return {**body, **overrides}


def secure(order: Order) -> None:
    """Payment and stock secured, as the saga learns them: the order is ready to ship."""
    saga.on_payment_secured(order_id=order.id)
    saga.on_stock_secured(order_id=order.id)


def ship(order: Order) -> Order:
    """Confirm and ship ``order`` the way the saga does when payments, inventory and shipping answer."""
    if order.status == Order.Status.DRAFT:
        order_confirm(order_id=order.id)
    saga.on_payment_secured(order_id=order.id)
    saga.on_stock_secured(order_id=order.id)
    saga.on_shipment_arranged(
        order_id=order.id, carrier="Sandbox Post", tracking_number="SBX123", estimated_delivery=dt.date(2030, 1, 2)
    )
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED
    return order


def nothing_written(customer) -> bool:
    return (
        not Order.objects.filter(customer=customer).exists()
        and not OutboxEvent.objects.filter(type="orders.OrderPlaced").exists()
    )


# placing


def test_a_customer_places_a_draft_order_priced_from_the_catalogue(alice, pen, lamp):
    # given
    body = new_order((pen, 3), (lamp, 1), shipping_address={**ADDRESS, "country": "gb"})
    # when
    response = token_client(alice).post(ORDERS_URL, body, format="json")
    # then
    assert response.status_code == 201, response.json()
    order = Order.objects.get(customer=alice)
    assert response["Location"] == f"/api/orders/{order.id}/"
    assert response.json() == {
        "id": str(order.id),
        "status": "draft",
        "customer": "alice",
        "lines": [
            {"sku": pen.sku, "name": pen.name, "quantity": 3, "unit_price": "1.20"},
            {"sku": lamp.sku, "name": lamp.name, "quantity": 1, "unit_price": "39.00"},
        ],
        "total": {"amount": "42.60", "currency": "EUR"},
        "payment_status": "not_requested",
        "inventory_status": "not_requested",
        "shipment": None,
        "shipping_address": {**ADDRESS, "line2": "", "country": "GB"},
        "created_at": iso(order.created_at),
        "confirmed_at": None,
        "cancelled_at": None,
        "shipped_at": None,
        "cancel_reason": None,
    }
    assert [e.type for e in OutboxEvent.objects.filter(correlation_id=order.correlation_id)] == ["orders.OrderPlaced"]


@pytest.mark.parametrize(
    ("change", "errors"),
    [
        (
            lambda b: b["lines"][0].update(quantity=0),
            {"lines.0.quantity": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            lambda b: b["lines"][1].update(quantity=-2),
            {"lines.1.quantity": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            lambda b: b["lines"][0].update(quantity=10_001),
            {"lines.0.quantity": ["Ensure this value is less than or equal to 10000."]},
        ),
        (lambda b: b["lines"][0].update(quantity="two"), {"lines.0.quantity": ["A valid integer is required."]}),
        (lambda b: b["lines"][0].update(quantity=1.5), {"lines.0.quantity": ["A valid integer is required."]}),
        (lambda b: b["lines"][0].pop("sku"), {"lines.0.sku": ["This field is required."]}),
        (lambda b: b.update(lines=[]), {"lines": ["An order needs at least one line."]}),
        (
            lambda b: b.update(lines=b["lines"] * 51),
            {"lines": ["An order has at most 100 lines: split it into several orders."]},
        ),
        (
            lambda b: b.update(lines="PEN-BLUE"),
            {"lines": ['Expected a list of items but got type "str".']},
        ),
        (lambda b: b.pop("shipping_address"), {"shipping_address": ["This field is required."]}),
        (
            lambda b: b.update(shipping_address="12 Main St"),
            {"shipping_address.non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
        ),
        (lambda b: b["shipping_address"].pop("city"), {"shipping_address.city": ["This field is required."]}),
        (
            lambda b: b["shipping_address"].update(country="D1"),
            {
                "shipping_address.country": [
                    "Give the country as its ISO 3166-1 alpha-2 code, two letters like DE or FR."
                ]
            },
        ),
        (
            lambda b: b["shipping_address"].update(country="Germany"),
            {
                "shipping_address.country": [
                    "Give the country as its ISO 3166-1 alpha-2 code, two letters like DE or FR."
                ]
            },
        ),
        (
            lambda b: b["shipping_address"].update(country="XX"),
            {"shipping_address.country": ["'XX' is not an ISO 3166-1 alpha-2 country code, like DE or FR."]},
        ),
        (lambda b: b.pop("payment_token"), {"payment_token": ["This field is required."]}),
        (lambda b: b.update(payment_token=["tok_visa"]), {"payment_token": ["Not a valid string."]}),
        (lambda b: b.update(payment_token=" "), {"payment_token": ["This field may not be blank."]}),
    ],
    ids=[
        "zero quantity",
        "negative quantity",
        "quantity over the limit",
        "quantity not a number",
        "fractional quantity",
        "line without sku",
        "no lines",
        "too many lines",
        "lines not a list",
        "missing address",
        "address not an object",
        "address without city",
        "country not letters",
        "country name instead of code",
        "country code nobody has",
        "missing payment token",
        "payment token not a string",
        "blank payment token",
    ],
)
def test_invalid_orders_are_refused_with_the_field_named_and_nothing_written(alice, pen, lamp, change, errors):
    # given a valid body with one thing wrong
    body = new_order((pen, 1), (lamp, 1))
    change(body)
    # when
    response = token_client(alice).post(ORDERS_URL, body, format="json")
    # then
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == errors
    [(path, [message])] = errors.items()
    assert response.json()["detail"] == f"Invalid input: {path}: {message}"
    assert nothing_written(alice)


def test_too_many_lines_are_refused_before_any_line_is_validated(alice, settings):
    # given 40,000 lines in under 1 MiB, the 150th of them invalid
    body = new_order(*[(make_product(sku="P"), 1)] * 40_000)
    body["lines"][149]["quantity"] = 0
    raw = json.dumps(body, separators=(",", ":"))
    assert len(raw) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    # when
    response = token_client(alice).generic("POST", ORDERS_URL, raw, content_type="application/json")
    # then only the count is reported: no line was looked at
    assert response.status_code == 400
    assert response.json()["errors"] == {"lines": ["An order has at most 100 lines: split it into several orders."]}
    assert nothing_written(alice)


def test_an_unknown_sku_is_refused_naming_the_sku_and_its_line(alice, pen):
    # when
    response = token_client(alice).post(ORDERS_URL, new_order((pen, 1)) | {"lines": [
        {"sku": pen.sku, "quantity": 1}, {"sku": "NO-SUCH-SKU", "quantity": 2}
    ]}, format="json")  # fmt: skip
    # then
    assert response.status_code == 400
    message = "No product has SKU 'NO-SUCH-SKU': choose one from the catalogue."
    assert response.json() == {
        "detail": f"Invalid input: lines.1.sku: {message}",
        "code": "invalid",
        "errors": {"lines.1.sku": [message]},
    }
    assert nothing_written(alice)


def test_a_sku_on_two_lines_is_refused(alice, pen):
    response = token_client(alice).post(ORDERS_URL, new_order((pen, 1), (pen, 2)), format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "lines.1.sku": [f"{pen.sku} is on an earlier line: put the whole quantity on one line."]
    }
    assert nothing_written(alice)


def test_every_line_the_service_refuses_is_named_in_one_answer(alice, pen):
    # given an unknown SKU on line 1 and the pen again on line 2
    body = new_order((pen, 1)) | {
        "lines": [
            {"sku": pen.sku, "quantity": 1},
            {"sku": "NO-SUCH-SKU", "quantity": 1},
            {"sku": pen.sku, "quantity": 2},
        ]
    }
    # when
    response = token_client(alice).post(ORDERS_URL, body, format="json")
    # then the service's errors, each under its line's field
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "lines.1.sku": ["No product has SKU 'NO-SUCH-SKU': choose one from the catalogue."],
        "lines.2.sku": [f"{pen.sku} is on an earlier line: put the whole quantity on one line."],
    }
    assert nothing_written(alice)


def test_a_business_rule_the_service_enforces_comes_back_as_400_with_its_message(alice, pen):
    # given two products priced in different currencies
    dollar_pen = make_product(price="1.00", currency="USD")
    # when
    response = token_client(alice).post(ORDERS_URL, new_order((pen, 1), (dollar_pen, 1)), format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": "All lines of one order must be in one currency, not EUR, USD.",
        "code": "invalid",
        "errors": {"non_field_errors": ["All lines of one order must be in one currency, not EUR, USD."]},
    }
    assert nothing_written(alice)


def test_an_order_whose_total_would_not_fit_is_refused(alice):
    # given two products at a million euros each, and ten thousand of each ordered
    yacht, jet = make_product(price="999999.99"), make_product(price="999999.99")
    # when
    response = token_client(alice).post(ORDERS_URL, new_order((yacht, 10_000), (jet, 10_000)), format="json")
    # then
    assert response.status_code == 400
    message = "The order total, 19999999800.00 EUR, is over the limit of one order: split it up."
    assert response.json() == {"detail": message, "code": "invalid", "errors": {"non_field_errors": [message]}}
    assert nothing_written(alice)


def test_malformed_json_is_refused(alice):
    response = token_client(alice).generic("POST", ORDERS_URL, '{"lines": [', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert response.json()["detail"].startswith("The body is not valid JSON: ")
    assert nothing_written(alice)


def test_a_body_that_is_not_an_object_is_refused(alice):
    response = token_client(alice).post(ORDERS_URL, [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


def test_a_1_mb_body_is_refused_unread(alice, pen, settings):
    # given a well-formed order padded past the limit
    body = json.dumps(new_order((pen, 1), payment_token="t" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    # when
    response = token_client(alice).generic("POST", ORDERS_URL, body, content_type="application/json")
    # then
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"The request body is larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes: "
        "send less.",
        "code": "request_too_large",
    }
    assert nothing_written(alice)


def test_a_form_body_is_refused_as_the_wrong_media_type(alice):
    response = token_client(alice).post(ORDERS_URL, {"payment_token": "tok_visa"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


# authentication: every route


ROUTES = [
    ("get", ORDERS_URL),
    ("post", ORDERS_URL),
    ("get", "/api/orders/{id}/"),
    ("post", "/api/orders/{id}/confirm/"),
    ("post", "/api/orders/{id}/cancel/"),
    ("get", "/api/orders/{id}/events/"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_401_saying_how_to_authenticate(alice, method, path):
    # given
    order = place_order(customer=alice)
    # when
    response = getattr(APIClient(), method)(path.format(id=order.id), {"reason": "x"}, format="json")
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    order.refresh_from_db()
    assert order.status == "draft"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_bad_token_is_401(alice, method, path):
    order = place_order(customer=alice)
    response = getattr(token_client(key="f" * 40), method)(path.format(id=order.id), {"reason": "x"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}
    order.refresh_from_db()
    assert order.status == "draft"


def test_a_signed_in_browser_session_may_use_the_api(alice):
    # given the web shop's session, not a token
    order = place_order(customer=alice)
    client = APIClient()
    client.force_login(alice)
    # when
    response = client.get(order_url(order.id))
    # then
    assert response.status_code == 200
    assert response.json()["id"] == str(order.id)


# listing and reading


def test_a_customer_lists_only_their_own_orders_newest_first(alice, bob):
    # given
    first, second = place_order(customer=alice), place_order(customer=alice)
    place_order(customer=bob)
    # when
    response = token_client(alice).get(ORDERS_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert [row["id"] for row in body["results"]] == [str(second.id), str(first.id)]
    assert {row["customer"] for row in body["results"]} == {"alice"}


def test_staff_list_every_customers_orders(alice, bob):
    ids = {str(place_order(customer=alice).id), str(place_order(customer=bob).id)}
    response = token_client(make_user("sam", staff=True, perms=("orders.view_order",))).get(ORDERS_URL)
    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == ids


def test_the_list_filters_by_status_and_pages(alice):
    # given three drafts and a confirmed order
    drafts = [place_order(customer=alice) for _ in range(3)]
    place_order(customer=alice, confirm=True)
    client = token_client(alice)
    # when
    first = client.get(ORDERS_URL, {"status": "draft", "page_size": 2}).json()
    second = client.get(first["next"]).json()
    # then
    assert first["count"] == 3
    pages = [row["id"] for row in first["results"]] + [row["id"] for row in second["results"]]
    assert pages == [str(order.id) for order in reversed(drafts)]
    assert {row["status"] for row in first["results"] + second["results"]} == {"draft"}


def test_a_page_of_orders_costs_the_same_queries_however_many_orders_it_holds(alice):
    # given a client with its token, and one order
    client = token_client(alice)
    place_order(customer=alice, confirm=True)
    with CaptureQueriesContext(connection) as one:
        client.get(ORDERS_URL)
    # when there are ten
    for _ in range(9):
        place_order(customer=alice, confirm=True)
    with CaptureQueriesContext(connection) as ten:
        response = client.get(ORDERS_URL)
    # then
    assert response.json()["count"] == 10
    assert len(ten.captured_queries) == len(one.captured_queries)


def test_an_unknown_status_filter_is_400_naming_it(alice):
    response = token_client(alice).get(ORDERS_URL, {"status": "lost"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": ['"lost" is not a valid choice.']}


def test_the_owner_reads_an_order(alice):
    order = place_order(customer=alice)
    response = token_client(alice).get(order_url(order.id))
    assert response.status_code == 200
    assert response.json()["id"] == str(order.id)
    assert response.json()["status"] == "draft"


def test_staff_read_any_order(alice):
    order = place_order(customer=alice)
    response = token_client(make_user("sam", staff=True, perms=("orders.view_order",))).get(order_url(order.id))
    assert response.status_code == 200
    assert response.json()["customer"] == "alice"


def test_another_customer_is_told_the_order_does_not_exist(alice, bob):
    # given alice's order
    order = place_order(customer=alice)
    # when bob asks for it
    response = token_client(bob).get(order_url(order.id))
    # then it is a 404, exactly as for an order that does not exist
    unknown = uuid.uuid4()
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {order.id}.", "code": "not_found"}
    assert token_client(bob).get(order_url(unknown)).json() == {
        "detail": f"You have no order {unknown}.",
        "code": "not_found",
    }


def test_a_malformed_order_id_is_404_json(alice):
    response = token_client(alice).get("/api/orders/not-a-uuid/")
    assert response.status_code == 404
    assert response.json() == {
        "detail": "There is no API route /api/orders/not-a-uuid/: see /api/docs/.",
        "code": "not_found",
    }


def test_an_order_in_flight_shows_payment_and_stock_as_the_saga_learns_them(alice):
    # given a confirmed order
    order = place_order(customer=alice, confirm=True)
    client = token_client(alice)
    assert _progress(client, order) == ("confirmed", "pending", "pending", None)
    # when payment is secured, then stock
    saga.on_payment_secured(order_id=order.id)
    assert _progress(client, order) == ("confirmed", "authorised", "pending", None)
    saga.on_stock_secured(order_id=order.id)
    # then it is ready to ship
    assert _progress(client, order) == ("ready_to_ship", "authorised", "reserved", None)


def test_a_shipped_order_shows_its_shipment(alice):
    order = ship(place_order(customer=alice))
    body = token_client(alice).get(order_url(order.id)).json()
    assert body["status"] == "shipped"
    assert body["shipment"] == {
        "carrier": "Sandbox Post",
        "tracking_number": "SBX123",
        "estimated_delivery": "2030-01-02",
    }
    assert body["shipped_at"] == iso(order.shipped_at)


def test_a_cancelled_order_shows_the_refund_once_payments_made_it(alice):
    # given a paid order, cancelled by its customer
    order = place_order(customer=alice, confirm=True)
    saga.on_payment_secured(order_id=order.id)
    client = token_client(alice)
    client.post(order_url(order.id, "cancel"), {"reason": "Changed my mind."}, format="json")
    assert _progress(client, order) == ("cancelled", "authorised", "cancelled", None)
    # when payments has refunded it (its event, in the order's correlation)
    with transaction.atomic():
        refund = PaymentRefunded(
            payment_id=uuid.uuid4(),
            order_id=order.id,
            amount=Money(amount=Decimal("10.00"), currency="EUR"),
            provider_reference="SBX-1",
            refund_reference="SBX-R-1",
        )
        publish(refund, correlation_id=order.correlation_id)
    # then
    assert _progress(client, order) == ("cancelled", "refunded", "cancelled", None)


def _progress(client, order) -> tuple:
    body = client.get(order_url(order.id)).json()
    return body["status"], body["payment_status"], body["inventory_status"], body["shipment"]


# confirming


def test_the_owner_confirms_a_draft_and_is_answered_at_once(alice):
    # given a draft (and no worker running: nothing is waited for)
    order = place_order(customer=alice)
    # when
    response = token_client(alice).post(order_url(order.id, "confirm"))
    # then
    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["status"], body["payment_status"], body["inventory_status"]) == (
        str(order.id),
        "confirmed",
        "pending",
        "pending",
    )
    order.refresh_from_db()
    assert body["confirmed_at"] == iso(order.confirmed_at)
    types = [e.type for e in OutboxEvent.objects.filter(correlation_id=order.correlation_id)]
    assert types == ["orders.OrderPlaced", "orders.OrderConfirmed"]


def test_confirming_again_answers_202_with_the_order_as_it_is_and_does_nothing_twice(alice):
    # given a confirmed order, whose confirmation the client never heard back about
    order = place_order(customer=alice, confirm=True)
    client = token_client(alice)
    # when it retries
    response = client.post(order_url(order.id, "confirm"))
    # then
    assert response.status_code == 202
    assert response.json() == client.get(order_url(order.id)).json()
    assert response.json()["status"] == "confirmed"
    order.refresh_from_db()
    assert response.json()["confirmed_at"] == iso(order.confirmed_at)
    assert OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderConfirmed").count() == 1


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (secure, "ready_to_ship"),
        (ship, "shipped"),
        (
            lambda order: order_cancel(order_id=order.id, reason="Changed my mind.", by_user_id=order.customer_id),
            "cancelled",
        ),
    ],
    ids=["ready to ship", "shipped", "cancelled after confirming"],
)
def test_confirming_an_order_that_has_moved_on_answers_202_with_its_state_now(alice, outcome, status):
    # given an order confirmed, which has since moved on
    order = place_order(customer=alice, confirm=True)
    outcome(order)
    events = OutboxEvent.objects.filter(correlation_id=order.correlation_id).count()
    # when the confirmation is retried
    response = token_client(alice).post(order_url(order.id, "confirm"))
    # then
    assert response.status_code == 202
    assert response.json()["status"] == status
    order.refresh_from_db()
    assert order.status == status
    assert OutboxEvent.objects.filter(correlation_id=order.correlation_id).count() == events


def test_confirming_a_draft_cancelled_before_any_confirmation_is_a_conflict(alice):
    # given
    order = place_order(customer=alice)
    order_cancel(order_id=order.id, reason="Not now.", by_user_id=order.customer_id)
    # when
    response = token_client(alice).post(order_url(order.id, "confirm"))
    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Order {order.id} is cancelled: it cannot be confirmed. Only a draft order can be confirmed.",
        "code": "conflict",
    }
    assert not OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderConfirmed").exists()


def test_another_customer_cannot_confirm_and_is_told_it_does_not_exist(alice, bob):
    order = place_order(customer=alice)
    response = token_client(bob).post(order_url(order.id, "confirm"))
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {order.id}.", "code": "not_found"}
    order.refresh_from_db()
    assert order.status == "draft"


def test_staff_may_not_confirm_a_customers_order(alice):
    order = place_order(customer=alice)
    staff = make_user("sam", staff=True, perms=("orders.view_order", "orders.change_order"))
    response = token_client(staff).post(order_url(order.id, "confirm"))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only the customer who placed an order may confirm it.",
        "code": "permission_denied",
    }
    order.refresh_from_db()
    assert order.status == "draft"


# cancelling


@pytest.mark.parametrize("confirm", [False, True], ids=["draft", "confirmed"])
def test_the_owner_cancels_an_order_that_has_not_shipped(alice, confirm):
    # given
    order = place_order(customer=alice, confirm=confirm)
    # when
    response = token_client(alice).post(order_url(order.id, "cancel"), {"reason": "Found it cheaper."}, format="json")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["cancel_reason"]) == ("cancelled", "Found it cheaper.")
    order.refresh_from_db()
    assert (order.status, order.cancel_code) == ("cancelled", "customer")
    assert body["cancelled_at"] == iso(order.cancelled_at)
    cancelled = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderCancelled")
    assert (cancelled.payload["code"], cancelled.payload["reason"]) == ("customer", "Found it cheaper.")


def test_staff_cancel_a_customers_order_as_staff(alice):
    order = place_order(customer=alice, confirm=True)
    staff = make_user("sam", staff=True, perms=("orders.change_order",))
    response = token_client(staff).post(order_url(order.id, "cancel"), {"reason": "Fraud check."}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    order.refresh_from_db()
    assert (order.cancel_code, order.cancel_reason) == ("staff", "Fraud check.")


def test_cancelling_a_shipped_order_is_a_conflict(alice):
    # given
    order = ship(place_order(customer=alice))
    # when
    response = token_client(alice).post(order_url(order.id, "cancel"), {"reason": "Too late?"}, format="json")
    # then
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Order {order.id} is shipped: it cannot be cancelled. "
        "An order can be cancelled only until it has shipped.",
        "code": "conflict",
    }
    order.refresh_from_db()
    assert order.status == "shipped"
    assert not OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderCancelled").exists()


def test_cancelling_again_is_safe_and_answers_the_order_as_the_first_cancellation_left_it(alice):
    # given an order its customer cancelled
    order = place_order(customer=alice)
    client = token_client(alice)
    assert client.post(order_url(order.id, "cancel"), {"reason": "No."}, format="json").status_code == 200
    # when the cancellation is sent again (say, its answer was lost)
    response = client.post(order_url(order.id, "cancel"), {"reason": "No!"}, format="json")
    # then it answers the cancelled order, and nothing happened twice
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_reason"]) == ("cancelled", "No.")
    events = OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderCancelled")
    assert events.count() == 1


def test_another_customer_cannot_cancel_and_is_told_it_does_not_exist(alice, bob):
    order = place_order(customer=alice, confirm=True)
    response = token_client(bob).post(order_url(order.id, "cancel"), {"reason": "Mischief."}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {order.id}.", "code": "not_found"}
    order.refresh_from_db()
    assert order.status == "confirmed"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"reason": ["This field is required."]}),
        ({"reason": ""}, {"reason": ["This field may not be blank."]}),
        ({"reason": "x" * 501}, {"reason": ["Ensure this field has no more than 500 characters."]}),
        ({"reason": {"why": "x"}}, {"reason": ["Not a valid string."]}),
    ],
    ids=["missing", "blank", "too long", "not a string"],
)
def test_a_cancellation_needs_a_reason(alice, body, errors):
    order = place_order(customer=alice)
    response = token_client(alice).post(order_url(order.id, "cancel"), body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == errors
    order.refresh_from_db()
    assert order.status == "draft"


def test_a_malformed_cancellation_is_refused(alice):
    order = place_order(customer=alice)
    response = token_client(alice).generic(
        "POST", order_url(order.id, "cancel"), '{"reason": ', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    order.refresh_from_db()
    assert order.status == "draft"


# events


def test_the_owner_reads_the_orders_events_in_causal_order_with_their_deliveries(alice):
    # given a confirmed order whose events the relay has fanned out to their handlers
    order = place_order(customer=alice, confirm=True)
    fan_out(batch_size=100)
    # when
    response = token_client(alice).get(order_url(order.id, "events"))
    # then
    assert response.status_code == 200
    body = response.json()
    placed, confirmed = OutboxEvent.objects.filter(correlation_id=order.correlation_id).order_by("id")
    assert (body["count"], body["next"], body["previous"]) == (2, None, None)
    assert body["results"][0] == {
        "event_id": str(placed.event_id),
        "type": "orders.OrderPlaced",
        "version": 1,
        "occurred_at": iso(placed.occurred_at),
        "aggregate_type": "orders.Order",
        "aggregate_id": str(order.id),
        "correlation_id": str(order.correlation_id),
        "causation_id": str(placed.causation_id) if placed.causation_id else None,
        "payload": placed.payload,
        "children": [],  # the confirmation was the customer's doing, not the placing's
        "deliveries": [],  # nobody subscribes to OrderPlaced
    }
    assert body["results"][1]["type"] == "orders.OrderConfirmed"
    assert body["results"][1]["version"] == 2
    assert body["results"][1]["event_id"] == str(confirmed.event_id)
    expected = [
        {"id": d.id, "handler": d.handler, "status": "dispatched", "attempts": 0, "held_by": None}
        for d in Delivery.objects.filter(event=confirmed).order_by("id")
    ]
    assert body["results"][1]["deliveries"] == expected
    assert {d["handler"].split(".")[0] for d in expected} >= {"payments", "inventory", "notifications"}


def test_a_delivery_held_behind_an_earlier_one_of_its_aggregate_names_it(alice):
    # given an order whose workflow has three steps for an ordered handler: 1 dead, 2 and 3 pending behind it
    order = place_order(customer=alice)
    thing = uuid.uuid4()
    with transaction.atomic():
        steps = [publish(Stepped(thing_id=thing, seq=n), correlation_id=order.correlation_id) for n in (1, 2, 3)]
    fan_out(batch_size=100)
    first = Delivery.objects.get(event=steps[0])
    Delivery.objects.filter(id=first.id).update(status="dead")
    # when
    with CaptureQueriesContext(connection) as queries:
        body = token_client(alice).get(order_url(order.id, "events")).json()
    # then each held step names the dead one, found in one query for the page
    deliveries = {row["event_id"]: row["deliveries"] for row in body["results"]}
    held_by = {"delivery_id": first.id, "event_id": str(steps[0].event_id), "handler": "probe.record_step"}
    assert deliveries[str(steps[0].event_id)][0]["held_by"] is None
    for step in steps[1:]:
        [delivery] = deliveries[str(step.event_id)]
        assert (delivery["status"], delivery["held_by"]) == ("pending", {**held_by, "status": "dead"})
    assert sum('AS "held_by"' in q["sql"] for q in queries) == 1


def test_staff_read_any_orders_events(alice):
    order = place_order(customer=alice)
    staff = make_user("sam", staff=True, perms=("orders.view_order",))
    response = token_client(staff).get(order_url(order.id, "events"))
    assert response.status_code == 200
    assert [row["type"] for row in response.json()["results"]] == ["orders.OrderPlaced"]


def test_another_customer_cannot_read_the_orders_events(alice, bob):
    order = place_order(customer=alice)
    response = token_client(bob).get(order_url(order.id, "events"))
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {order.id}.", "code": "not_found"}


def test_the_events_are_paginated(alice):
    # given a shipped order: placed, confirmed, ready to ship, shipped
    order = ship(place_order(customer=alice))
    client = token_client(alice)
    # when
    first = client.get(order_url(order.id, "events"), {"page_size": 3}).json()
    rest = client.get(first["next"]).json()
    # then
    assert (first["count"], len(first["results"]), rest["next"]) == (4, 3, None)
    assert [row["type"] for row in first["results"] + rest["results"]] == [
        "orders.OrderPlaced",
        "orders.OrderConfirmed",
        "orders.OrderReadyToShip",
        "orders.OrderShipped",
    ]
