"""The shop's front page: the catalogue, every product with its price and the units available now."""

import uuid

import pytest
from django.test import Client

from inventory.events import StockLine
from inventory.services import stock_reserve
from tests.factories import make_product
from tests.support.html import element, elements, text
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def pen(db):
    return make_product(price="1.20", on_hand=100)


@pytest.fixture
def lamp(db):
    return make_product(price="39.00", on_hand=0)


@pytest.fixture
def signed_in(db) -> Client:
    client = Client()
    client.force_login(make_user("alice"))
    return client


def test_the_front_page_asks_a_visitor_to_sign_in_and_lists_nothing(pen):
    response = Client().get("/")
    assert response.status_code == 200
    assert elements(response, "table", id="products") == []
    assert elements(response, "a", href="/accounts/login/")


def test_a_signed_in_customer_sees_each_product_with_price_and_availability(signed_in, pen, lamp):
    # given two of the pens reserved by an order
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=pen.sku, quantity=2)])
    # when
    response = signed_in.get("/")
    # then
    assert response.status_code == 200
    rows = {text(row.children[1]): [text(cell) for cell in row.children] for row in _body_rows(response, "products")}
    assert rows[pen.sku] == [pen.name, pen.sku, "1.20 EUR", "98", "Order"]
    assert rows[lamp.sku] == [lamp.name, lamp.sku, "39.00 EUR", "out of stock", ""]
    assert element(response, "a", href=f"/orders/new/?sku={pen.sku}")


def test_an_empty_catalogue_says_how_to_fill_it(signed_in):
    response = signed_in.get("/")
    assert elements(response, "table", id="products") == []
    assert "The catalogue is empty." in response.content.decode()


def test_the_front_page_only_reads(signed_in, pen):
    response = signed_in.post("/")
    assert response.status_code == 405


def _body_rows(response, table_id: str):
    table = element(response, "table", id=table_id)
    tbody = next(child for child in table.children if getattr(child, "name", "") == "tbody")
    return [row for row in tbody.children if getattr(row, "name", "") == "tr"]
