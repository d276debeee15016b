"""GET /api/products/ and GET /api/inventory/{sku}/?as_of=..."""

import datetime as dt
import uuid

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inventory.events import StockLine
from inventory.services import stock_receive, stock_reserve
from outbox.models import OutboxEvent
from tests.factories import make_product
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

PRODUCTS = "/api/products/"


def stock_url(sku: str) -> str:
    return f"/api/inventory/{sku}/"


def z(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def customer():
    return make_user("cora")


@pytest.fixture
def staff():
    """Staff who may read stock (``inventory.view_stockitem``)."""
    return make_user("stan", staff=True, perms=("inventory.view_stockitem",))


# products


def test_a_signed_in_customer_lists_products_with_what_is_available(customer):
    # given a product with 5 units, 2 of them reserved, and another
    mug = make_product(sku="API-MUG", price="12.90", on_hand=5)
    make_product(sku="API-PEN", price="1.20", on_hand=0, currency="usd")
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=mug.sku, quantity=2)])
    # when
    response = token_client(customer).get(PRODUCTS)
    # then
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [
            {"sku": "API-MUG", "name": "Product API-MUG", "price": "12.90", "currency": "EUR", "available": 3},
            {"sku": "API-PEN", "name": "Product API-PEN", "price": "1.20", "currency": "USD", "available": 0},
        ],
    }


def test_the_product_list_is_paginated_by_sku(customer):
    # given three products
    skus = [make_product(sku=f"API-PAGE-{n}").sku for n in (3, 1, 2)]
    client = token_client(customer)
    # when
    first = client.get(PRODUCTS, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    # then
    assert first["count"] == second["count"] == 3
    assert [p["sku"] for p in first["results"]] == sorted(skus)[:2]
    assert [p["sku"] for p in second["results"]] == sorted(skus)[2:]
    assert (first["previous"], second["next"]) == (None, None)
    assert second["previous"] is not None


def test_a_bad_page_size_is_400_and_a_page_past_the_end_404(customer):
    make_product()
    client = token_client(customer)
    assert client.get(PRODUCTS, {"page_size": 0}).status_code == 400
    assert client.get(PRODUCTS, {"page": 5}).status_code == 404


@pytest.mark.parametrize("url", [PRODUCTS, stock_url("ANY")])
def test_anonymous_clients_get_401(url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("url", [PRODUCTS, stock_url("ANY")])
def test_a_bad_token_is_401(url):
    response = token_client(key="not-a-real-token").get(url)
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


# stock


def test_staff_see_a_skus_stock_now(staff):
    # given
    product = make_product(sku="API-LAMP", on_hand=9)
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=product.sku, quantity=4)])
    before = timezone.now()
    # when
    response = token_client(staff).get(stock_url(product.sku))
    # then
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "as_of"} == {
        "sku": "API-LAMP",
        "on_hand": 9,
        "reserved": 4,
        "available": 5,
    }
    assert before <= dt.datetime.fromisoformat(body["as_of"]) <= timezone.now()
    assert body["as_of"].endswith("Z")


def test_staff_see_a_skus_stock_as_of_a_past_time(staff):
    # given 6 units received, then 4 more later
    product = make_product(on_hand=6)
    between = timezone.now()
    stock_receive(sku=product.sku, quantity=4)
    first = OutboxEvent.objects.filter(aggregate_id=product.sku).order_by("id").first()
    client = token_client(staff)
    # when / then: between the two receipts
    response = client.get(stock_url(product.sku), {"as_of": z(between)})
    assert response.status_code == 200
    assert response.json() == {
        "sku": product.sku,
        "on_hand": 6,
        "reserved": 0,
        "available": 6,
        "as_of": z(between),
    }
    # the same instant with another offset is the same answer, given in UTC
    in_paris = between.astimezone(dt.timezone(dt.timedelta(hours=1))).isoformat()
    assert client.get(stock_url(product.sku), {"as_of": in_paris}).json()["as_of"] == z(between)
    # before the first event there was nothing; now there are 10
    earlier = z(first.occurred_at - dt.timedelta(seconds=1))
    assert client.get(stock_url(product.sku), {"as_of": earlier}).json()["on_hand"] == 0
    assert client.get(stock_url(product.sku)).json()["on_hand"] == 10


def test_an_empty_as_of_means_now(staff):
    # (as DRF reads any optional query parameter that is present but blank)
    product = make_product(on_hand=2)
    response = token_client(staff).get(stock_url(product.sku), {"as_of": ""})
    assert (response.status_code, response.json()["on_hand"]) == (200, 2)


def test_a_future_as_of_is_answered_as_now(staff):
    product = make_product(on_hand=3)
    next_year = timezone.now() + dt.timedelta(days=365)
    body = token_client(staff).get(stock_url(product.sku), {"as_of": z(next_year)}).json()
    assert body["on_hand"] == 3
    assert dt.datetime.fromisoformat(body["as_of"]) <= timezone.now()


NAIVE = (
    "This time has no UTC offset, so it is ambiguous: give an ISO 8601 date and time with its UTC offset, "
    "e.g. 2026-03-01T12:00:00Z or 2026-03-01T13:00:00+01:00."
)
MALFORMED = (
    "Give an ISO 8601 date and time with its UTC offset, e.g. 2026-03-01T12:00:00Z or "
    "2026-03-01T13:00:00+01:00. (In a URL, write + as %2B.)"
)


@pytest.mark.parametrize(
    ("as_of", "message"),
    [
        ("2026-03-01T12:00:00", NAIVE),
        ("2026-03-01", MALFORMED),
        ("yesterday", MALFORMED),
        ("2026-13-01T12:00:00Z", MALFORMED),
        ("2026-03-01T12:00:00 01:00", MALFORMED),  # a "+" sent unencoded arrives as a space
    ],
)
def test_an_as_of_that_is_not_an_iso_time_with_an_offset_is_400_saying_so(staff, as_of, message):
    # given
    product = make_product()
    # when
    response = token_client(staff).get(stock_url(product.sku), {"as_of": as_of})
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Invalid input: as_of: {message}",
        "code": "invalid",
        "errors": {"as_of": [message]},
    }


OUT_OF_RANGE = "This time is out of range: in UTC it falls before 0001-01-01 or after 9999-12-31."


@pytest.mark.parametrize("as_of", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_an_as_of_that_falls_outside_the_calendar_in_utc_is_400_saying_so(staff, as_of):
    # given a time that is a valid date in its own offset, but year 0 or 10000 in UTC
    product = make_product()
    # when
    response = token_client(staff).get(stock_url(product.sku), {"as_of": as_of})
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Invalid input: as_of: {OUT_OF_RANGE}",
        "code": "invalid",
        "errors": {"as_of": [OUT_OF_RANGE]},
    }


def test_the_first_moment_of_the_calendar_in_utc_is_a_time_before_any_stock(staff):
    product = make_product(on_hand=4)
    response = token_client(staff).get(stock_url(product.sku), {"as_of": "0001-01-01T00:00:00Z"})
    assert (response.status_code, response.json()["on_hand"]) == (200, 0)


def test_a_sku_with_a_nul_character_is_404_like_any_unknown_sku(staff):
    response = token_client(staff).get(stock_url("PEN%00BLUE"))
    assert response.status_code == 404
    assert response.json() == {"detail": "No product has SKU 'PEN\\x00BLUE'.", "code": "not_found"}


def test_an_unknown_sku_is_404(staff):
    response = token_client(staff).get(stock_url("NO-SUCH-SKU"))
    assert response.status_code == 404
    assert response.json() == {"detail": "No product has SKU 'NO-SUCH-SKU'.", "code": "not_found"}


def test_customers_may_not_see_stock_levels(customer):
    product = make_product()
    response = token_client(customer).get(stock_url(product.sku))
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Reading stock levels needs the inventory.view_stockitem permission.",
        "code": "permission_denied",
    }


# the schema


@pytest.fixture
def staff_headers(staff, in_process_requests) -> dict[str, str]:
    make_product(sku="PEN-BLUE", on_hand=3)
    return {"Authorization": f"Token {Token.objects.create(user=staff).key}"}


schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@schema.include(path_regex=r"^/api/(products|inventory)/").parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_the_inventory_routes_answer_as_the_schema_says(case, staff_headers):
    # when a generated request is sent as staff: then no 5xx, and status, headers and body are as documented
    case.call_and_validate(headers=staff_headers)
