"""The catalogue as inventory publishes it: the one read API other contexts may call.

Prices (:func:`catalogue_prices`) and what can be ordered now
(:func:`catalogue_products`) come back as frozen values, never a model, so
inventory's tables stay its own business. Another context reads inventory
only here and in :mod:`inventory.events`; orders does so through its one
port, :mod:`orders.catalogue`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from .models import Product
from .selectors import products_available


@dataclass(frozen=True)
class CataloguePrice:
    """A product's price now."""

    sku: str
    name: str
    price: Decimal
    currency: str


@dataclass(frozen=True)
class ProductAvailability:
    """A product's price now, and the units of it that can be ordered (on hand and not reserved)."""

    sku: str
    name: str
    price: Decimal
    currency: str
    available: int


def catalogue_prices(*, skus: Iterable[str]) -> dict[str, CataloguePrice]:
    """The current price of each known SKU; unknown SKUs are simply absent."""
    products = Product.objects.filter(sku__in=set(skus))
    return {p.sku: CataloguePrice(sku=p.sku, name=p.name, price=p.price, currency=p.currency) for p in products}


def catalogue_products() -> list[ProductAvailability]:
    """Every product with its price and availability, by SKU."""
    return [ProductAvailability(**row) for row in products_available()]
