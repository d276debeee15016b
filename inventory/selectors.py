"""Read-side queries of the inventory context.

:func:`catalogue_prices` and :func:`product_list` are the context's published
read API: other contexts (orders pricing a new order, the shop's pages) call
them and get plain immutable values, never a model, so inventory's tables
stay its own business.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from .models import Product, Reservation, StockItem


@dataclass(frozen=True)
class CataloguePrice:
    sku: str
    name: str
    price: Decimal
    currency: str


@dataclass(frozen=True)
class ProductAvailability:
    sku: str
    name: str
    price: Decimal
    currency: str
    available: int


@dataclass(frozen=True)
class StockLevel:
    sku: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def catalogue_prices(*, skus: Iterable[str]) -> dict[str, CataloguePrice]:
    """The current price of each known SKU; unknown SKUs are simply absent."""
    products = Product.objects.filter(sku__in=set(skus))
    return {p.sku: CataloguePrice(sku=p.sku, name=p.name, price=p.price, currency=p.currency) for p in products}


def product_list() -> list[ProductAvailability]:
    return [
        ProductAvailability(
            sku=p.sku, name=p.name, price=p.price, currency=p.currency, available=p.stock.on_hand - p.stock.reserved
        )
        for p in Product.objects.select_related("stock").order_by("sku")
    ]


def stock_level(*, sku: str) -> StockLevel | None:
    item = StockItem.objects.filter(sku=sku).first()
    return None if item is None else StockLevel(sku=item.sku, on_hand=item.on_hand, reserved=item.reserved)


def reservation_for_order(*, order_id: UUID) -> Reservation | None:
    return Reservation.objects.prefetch_related("lines").filter(order_id=order_id).first()
