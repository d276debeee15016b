"""The catalogue port: what orders needs of the products it sells, and the one module of orders that asks.

Inventory owns the catalogue and publishes it as plain frozen values
(:mod:`inventory.catalogue`); the rest of orders reads it only through
:func:`catalogue`, so a newcomer finds every dependency of orders on
inventory's catalogue here. The default adapter, :class:`InventoryCatalogue`,
is a synchronous read: placing an order must price it exactly now, which a
copy of the catalogue fed by events could only do approximately. It is a
query, never a write into another context.
"""

from collections.abc import Iterable
from typing import Protocol

from inventory.catalogue import CataloguePrice, ProductAvailability, catalogue_prices, catalogue_products

__all__ = ["Catalogue", "CataloguePrice", "InventoryCatalogue", "ProductAvailability", "catalogue"]


class Catalogue(Protocol):
    def prices(self, *, skus: Iterable[str]) -> dict[str, CataloguePrice]:
        """The price now of each SKU the catalogue has; a SKU it has not is absent."""
        ...

    def products(self) -> list[ProductAvailability]:
        """Every product with its price and the units available now, by SKU: what a customer may order."""
        ...


class InventoryCatalogue:
    """The catalogue as inventory publishes it."""

    def prices(self, *, skus: Iterable[str]) -> dict[str, CataloguePrice]:
        return catalogue_prices(skus=skus)

    def products(self) -> list[ProductAvailability]:
        return catalogue_products()


def catalogue() -> Catalogue:
    return InventoryCatalogue()
