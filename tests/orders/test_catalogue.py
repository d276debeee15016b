"""The catalogue port (orders.catalogue): the one module of orders that reads inventory's catalogue."""

import ast
from pathlib import Path

import pytest

from inventory.catalogue import catalogue_prices, catalogue_products
from orders.catalogue import InventoryCatalogue, catalogue
from tests.factories import make_product

pytestmark = pytest.mark.django_db

ORDERS = Path(__file__).resolve().parents[2] / "orders"


def test_the_default_adapter_answers_what_inventory_publishes():
    product = make_product(price="3.10", on_hand=7)
    port = catalogue()
    assert isinstance(port, InventoryCatalogue)
    assert port.prices(skus=[product.sku, "NO-SUCH-SKU"]) == catalogue_prices(skus=[product.sku])
    assert port.products() == catalogue_products()


def test_only_the_port_reads_inventory_and_only_its_catalogue():
    # every import of inventory by a module of orders: only its events, and the catalogue from the port
    reached = {
        (path.relative_to(ORDERS).as_posix(), name)
        for path in ORDERS.rglob("*.py")
        for name in _imported(path)
        if name.split(".")[0] == "inventory" and name != "inventory.events"
    }
    assert reached == {("catalogue.py", "inventory.catalogue")}


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names
