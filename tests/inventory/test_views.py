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


def test_a_visitor_sees_the_products_and_prices_without_signing_in(pen, lamp):
    # when someone who is not signed in opens the front page
    response = Client().get("/")
    # then the catalogue is there, prices and availability included
    assert response.status_code == 200
    rows = {text(row.children[1]): [text(cell) for cell in row.children] for row in _body_rows(response, "products")}
    assert rows[pen.sku] == [pen.name, pen.sku, "1.20 EUR", "100", "Order"]
    assert rows[lamp.sku] == [lamp.name, lamp.sku, "39.00 EUR", "out of stock", ""]
    # and it says that ordering needs signing in, and how
    assert element(response, "a", href="/accounts/login/?next=/")


def test_a_visitors_order_link_leads_to_sign_in_and_back_to_the_order_form(pen):
    # given the visitor follows a product's "Order" link
    link = dict(element(Client().get("/"), "a", href=f"/orders/new/?sku={pen.sku}").attributes)["href"]
    # when
    response = Client().get(link)
    # then they are asked to sign in, and brought back to the form for that product afterwards
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/orders/new/%3Fsku%3D{pen.sku}"


def test_the_front_page_links_its_stylesheet_and_fits_a_phone(client):
    response = client.get("/")
    assert element(response, "link", rel="stylesheet", href="/static/shop.css")
    assert element(response, "meta", name="viewport", content="width=device-width, initial-scale=1")
    stylesheet = client.get("/static/shop.css")
    assert stylesheet.status_code == 200
    assert "@media (max-width: 40rem)" in b"".join(stylesheet.streaming_content).decode()


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
