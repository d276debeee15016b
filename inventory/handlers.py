"""The inventory context's subscriptions: reserve, release and ship out an order's stock."""

from orders.events import OrderCancelled, OrderConfirmed, OrderShipped
from outbox.events import Envelope
from outbox.subscriptions import Subscription

from .events import StockLine
from .services import UnknownSku, stock_release, stock_reserve, stock_ship_out


def reserve_stock(event: OrderConfirmed, envelope: Envelope) -> None:
    stock_reserve(
        order_id=event.order_id, lines=[StockLine(sku=line.sku, quantity=line.quantity) for line in event.lines]
    )


def release_stock(event: OrderCancelled, envelope: Envelope) -> None:
    stock_release(order_id=event.order_id)


def ship_stock(event: OrderShipped, envelope: Envelope) -> None:
    stock_ship_out(order_id=event.order_id)


SUBSCRIPTIONS = [
    # A SKU inventory has never heard of will not appear by retrying.
    Subscription(OrderConfirmed, reserve_stock, permanent=(UnknownSku,)),
    Subscription(OrderCancelled, release_stock),
    Subscription(OrderShipped, ship_stock),
]
