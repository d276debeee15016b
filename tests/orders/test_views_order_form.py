"""The shop's order form: products, several lines, address, payment token, errors by the field."""

import pytest
from django.test import Client

from orders.models import Order
from outbox.models import OutboxEvent
from outbox.personal import open_value
from tests.factories import make_product
from tests.support.html import element, elements, errors_in, field_block, text
from tests.support.users import PASSWORD

pytestmark = pytest.mark.django_db

NEW_ORDER = "/orders/new/"


@pytest.fixture
def pen(db):
    return make_product(price="1.20", on_hand=100)


@pytest.fixture
def lamp(db):
    return make_product(price="39.00", on_hand=0)


def order_form(*lines, **fields) -> dict[str, str]:
    """The POST body of the order form: ``lines`` as (sku, quantity) in the first rows, the rest left empty."""
    body = {
        "lines-TOTAL_FORMS": "5",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "20",
        "name": "Alice Liddell",
        "line1": "1 Rabbit Hole",
        "line2": "",
        "city": "Oxford",
        "postal_code": "OX1 1DP",
        "country": "gb",
        "payment_token": "tok_visa",
    }
    for index in range(5):
        sku, quantity = lines[index] if index < len(lines) else ("", 1)
        body[f"lines-{index}-sku"] = sku
        body[f"lines-{index}-quantity"] = str(quantity)
    return {**body, **fields}


# the form


def test_the_order_form_has_several_lines_an_address_and_explains_the_sandbox_tokens(signed_in, pen, lamp):
    # when
    response = signed_in.get(NEW_ORDER, {"sku": pen.sku})
    # then
    assert response.status_code == 200
    assert len(elements(response, "tr", class_="line")) == 6  # the product chosen, and five empty rows
    first = element(response, "select", name="lines-0-sku")
    assert [dict(o.attributes).get("value") for o in first.children if "selected" in dict(o.attributes)] == [pen.sku]
    for name in ("name", "line1", "line2", "city", "postal_code", "country", "payment_token"):
        assert field_block(response, name)
    assert dict(element(response, "input", name="name").attributes)["value"] == "Alice Liddell"
    tokens = text(element(response, "ul", id="sandbox-tokens"))
    assert "tok_visa is authorised" in tokens
    assert "tok_decline is declined (as is any token starting tok_decline)" in tokens
    assert "tok_flaky fails twice with a network error, then is authorised on a retry" in tokens
    assert elements(response, "input", type="hidden", name="csrfmiddlewaretoken")


def test_a_customer_places_a_two_line_order_and_lands_on_its_page(signed_in, alice, pen, lamp):
    # when
    response = signed_in.post(NEW_ORDER, order_form((pen.sku, 3), (lamp.sku, 1)))
    # then
    order = Order.objects.get(customer=alice)
    assert response.status_code == 302
    assert response["Location"] == f"/orders/{order.id}/"
    assert order.status == "draft"
    assert [(line.sku, line.quantity) for line in order.lines.all()] == [(pen.sku, 3), (lamp.sku, 1)]
    assert order.shipping_address["country"] == "GB"
    assert open_value(order.payment_token) == "tok_visa"  # kept sealed
    page = signed_in.get(response["Location"])
    assert "Your order is placed as a draft: check it, then confirm it." in text(element(page, "ul", class_="messages"))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"lines-0-quantity": "0"}, "lines-0-quantity", "Ensure this value is greater than or equal to 1."),
        ({"lines-1-quantity": "-3"}, "lines-1-quantity", "Ensure this value is greater than or equal to 1."),
        ({"lines-0-quantity": "two"}, "lines-0-quantity", "Enter a whole number."),
        ({"lines-0-quantity": ""}, "lines-0-quantity", "How many? At least 1."),
        ({"lines-0-sku": "NO-SUCH-SKU"}, "lines-0-sku", "Select a valid choice. NO-SUCH-SKU is not one of the"),
        ({"city": ""}, "city", "This field is required."),
        ({"country": "D1"}, "country", "Give the country as its ISO 3166-1 alpha-2 code, two letters like DE or FR."),
        ({"country": "XX"}, "country", "'XX' is not an ISO 3166-1 alpha-2 country code, like DE or FR."),
        ({"payment_token": ""}, "payment_token", "This field is required."),
    ],
    ids=[
        "zero",
        "negative",
        "not a number",
        "no quantity",
        "unknown product",
        "city",
        "country",
        "no country",
        "token",
    ],
)
def test_an_invalid_field_is_refused_with_its_error_beside_it_and_nothing_placed(
    signed_in, alice, pen, lamp, change, field, message
):
    # when
    response = signed_in.post(NEW_ORDER, order_form((pen.sku, 1), (lamp.sku, 1), **change))
    # then
    assert response.status_code == 400
    if field.startswith("lines-"):
        row = next(r for r in elements(response, "tr", class_="line") if f'name="{field}"' in str(r))
        assert any(e.startswith(message) for e in errors_in(row)), errors_in(row)
    else:
        assert errors_in(field_block(response, field)) == [message]
    assert dict(element(response, "input", name="line1").attributes)["value"] == "1 Rabbit Hole"  # kept
    assert not Order.objects.filter(customer=alice).exists()
    assert not OutboxEvent.objects.filter(type="orders.OrderPlaced").exists()


def test_an_order_without_lines_is_refused(signed_in, alice, pen):
    response = signed_in.post(NEW_ORDER, order_form())
    assert response.status_code == 400
    assert errors_in(element(response, "div", id="line-errors")) == ["Choose at least one product."]
    assert not Order.objects.filter(customer=alice).exists()


def test_a_product_on_a_second_line_is_refused_beside_that_line(signed_in, alice, pen):
    # given the pen on the first and the third row, the second left empty
    body = order_form((pen.sku, 1), ("", 1), (pen.sku, 2))
    # when
    response = signed_in.post(NEW_ORDER, body)
    # then the service's refusal is shown beside the third row, the line it names
    assert response.status_code == 400
    rows = elements(response, "tr", class_="line")
    assert [errors_in(row) for row in rows[:3]] == [
        [],
        [],
        [f"{pen.sku} is on an earlier line: put the whole quantity on one line."],
    ]
    assert errors_in(element(response, "div", id="form-errors")) == []
    assert not Order.objects.filter(customer=alice).exists()


def test_a_rule_only_the_service_knows_is_shown_above_the_form(signed_in, alice, pen):
    # given a product priced in another currency
    dollar_pen = make_product(price="1.00", currency="USD")
    # when
    response = signed_in.post(NEW_ORDER, order_form((pen.sku, 1), (dollar_pen.sku, 1)))
    # then
    assert response.status_code == 400
    assert errors_in(element(response, "div", id="form-errors")) == [
        "All lines of one order must be in one currency, not EUR, USD."
    ]
    assert not Order.objects.filter(customer=alice).exists()


def test_the_form_refuses_a_post_without_its_csrf_token(alice, pen):
    # given a browser-like client that enforces CSRF, signed in
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    # when the form is posted without the token (as a forged cross-site form would be)
    response = client.post(NEW_ORDER, order_form((pen.sku, 1)))
    # then
    assert response.status_code == 403
    assert not Order.objects.filter(customer=alice).exists()
    # and with the token from the page it goes through
    page = client.get(NEW_ORDER)
    token = dict(elements(page, "input", name="csrfmiddlewaretoken")[0].attributes)["value"]
    assert client.post(NEW_ORDER, {**order_form((pen.sku, 1)), "csrfmiddlewaretoken": token}).status_code == 302
    assert Order.objects.filter(customer=alice).count() == 1


@pytest.mark.parametrize("url", ["/orders/", NEW_ORDER])
def test_a_visitor_is_sent_to_sign_in(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_the_sign_in_page_takes_a_customer_back_where_they_were(alice):
    # given
    client = Client()
    # when
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD, "next": NEW_ORDER})
    # then
    assert response.status_code == 302
    assert response["Location"] == NEW_ORDER
    assert client.get(NEW_ORDER).status_code == 200
