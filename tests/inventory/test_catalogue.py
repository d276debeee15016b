"""Inventory's published catalogue (inventory.catalogue): prices and availability as frozen values."""

import dataclasses
import uuid
from decimal import Decimal

import pytest

from inventory.catalogue import CataloguePrice, ProductAvailability, catalogue_prices, catalogue_products
from inventory.events import StockLine
from inventory.services import product_reprice, stock_reserve
from tests.factories import make_product

pytestmark = pytest.mark.django_db


def test_prices_are_the_catalogues_now_and_an_unknown_sku_is_absent():
    # given a product repriced since it was made
    product = make_product(price="2.00")
    product_reprice(sku=product.sku, price=Decimal("2.50"))
    # when
    prices = catalogue_prices(skus=[product.sku, "NO-SUCH-SKU"])
    # then
    assert prices == {
        product.sku: CataloguePrice(sku=product.sku, name=product.name, price=Decimal("2.50"), currency="EUR")
    }


def test_the_products_say_what_is_available_by_sku():
    # given two products, two units of one reserved
    b = make_product(sku="B-1", on_hand=5)
    make_product(sku="A-1", on_hand=0)
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=b.sku, quantity=2)])
    # when
    products = catalogue_products()
    # then
    assert [(p.sku, p.available) for p in products] == [("A-1", 0), ("B-1", 3)]
    assert isinstance(products[0], ProductAvailability)


def test_the_values_are_frozen_never_a_model():
    product = make_product()
    price = catalogue_prices(skus=[product.sku])[product.sku]
    [listed] = catalogue_products()
    for value in (price, listed):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.price = Decimal("0.01")
