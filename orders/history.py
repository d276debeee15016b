"""An order's state at any instant is the fold of its workflow's events: pure functions over values, no database.

Every event of one order's life shares its correlation id: the orders
context's own (placed, confirmed, ready to ship, shipped, cancelled) and
those of the contexts that act for it (payment, reservation, release, refund,
stock shipped). The state after the events that happened by a time ``T`` is::

    fold_all(OrderHistory(), events_by_T)

where each event comes with the time it happened (which time that is, is the
selector's to say). Like the saga, the fold
records facts and never refuses one: a payment or reservation is learnt once
(the first answer stands), and the other contexts' events may come in any
order. :mod:`orders.selectors` reads the log and turns the result into what
the order detail shows (:func:`orders.selectors.order_as_of`).
"""

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import reduce
from typing import Any

from inventory.events import InventoryReleased, InventoryReservationFailed, InventoryReserved, StockShipped
from outbox.events import DomainEvent, Money
from payments.events import PaymentFailed, PaymentProcessed, PaymentRefunded

from .events import OrderCancelled, OrderConfirmed, OrderLine, OrderPlaced, OrderReadyToShip, OrderShipped
from .models import Order, OrderSaga

Status = Order.Status


@dataclass(frozen=True)
class ShipmentState:
    carrier: str
    tracking_number: str
    estimated_delivery: dt.date | None


@dataclass(frozen=True)
class OrderHistory:
    """What the events folded so far say about the order. ``placed_at`` is None until it was placed."""

    placed_at: dt.datetime | None = None
    customer_id: int | None = None
    lines: tuple[OrderLine, ...] = ()
    total: Money | None = None
    shipping_address: dict | None = None
    status: str = Status.DRAFT
    confirmed_at: dt.datetime | None = None
    cancelled_at: dt.datetime | None = None
    shipped_at: dt.datetime | None = None
    cancel_code: str = ""
    cancel_reason: str = ""
    shipment: ShipmentState | None = None
    payment: str = OrderSaga.Payment.PENDING  # as the saga learns it: pending, then secured or failed
    refunded: bool = False
    stock: str = OrderSaga.Stock.PENDING  # pending, then secured or short
    released: bool = False
    stock_shipped: bool = False
    events: int = 0  # how many were folded

    @property
    def confirmed(self) -> bool:
        return self.confirmed_at is not None


def _placed(state: OrderHistory, event: OrderPlaced, at: dt.datetime) -> OrderHistory:
    return replace(
        state,
        placed_at=at,
        customer_id=event.customer_id,
        lines=event.lines,
        total=event.total,
        shipping_address=event.shipping_address.model_dump(),
    )


def _confirmed(state: OrderHistory, event: OrderConfirmed, at: dt.datetime) -> OrderHistory:
    return replace(state, status=Status.CONFIRMED, confirmed_at=at)


def _ready(state: OrderHistory, event: OrderReadyToShip, at: dt.datetime) -> OrderHistory:
    return replace(state, status=Status.READY_TO_SHIP)


def _shipped(state: OrderHistory, event: OrderShipped, at: dt.datetime) -> OrderHistory:
    shipment = ShipmentState(event.carrier, event.tracking_number, event.estimated_delivery)
    return replace(state, status=Status.SHIPPED, shipped_at=at, shipment=shipment)


def _cancelled(state: OrderHistory, event: OrderCancelled, at: dt.datetime) -> OrderHistory:
    return replace(state, status=Status.CANCELLED, cancelled_at=at, cancel_code=event.code, cancel_reason=event.reason)


def _payment(outcome: str) -> Callable[[OrderHistory, DomainEvent, dt.datetime], OrderHistory]:
    def learn(state: OrderHistory, event: DomainEvent, at: dt.datetime) -> OrderHistory:
        return replace(state, payment=outcome) if state.payment == OrderSaga.Payment.PENDING else state

    return learn


def _stock(outcome: str) -> Callable[[OrderHistory, DomainEvent, dt.datetime], OrderHistory]:
    def learn(state: OrderHistory, event: DomainEvent, at: dt.datetime) -> OrderHistory:
        return replace(state, stock=outcome) if state.stock == OrderSaga.Stock.PENDING else state

    return learn


def _flag(name: str) -> Callable[[OrderHistory, DomainEvent, dt.datetime], OrderHistory]:
    def record(state: OrderHistory, event: DomainEvent, at: dt.datetime) -> OrderHistory:
        flags: dict[str, Any] = {name: True}
        return replace(state, **flags)

    return record


# Each effect takes the events of its own key's type (Any: a mapping cannot say so per entry).
_EFFECTS: dict[type[DomainEvent], Callable[[OrderHistory, Any, dt.datetime], OrderHistory]] = {
    OrderPlaced: _placed,
    OrderConfirmed: _confirmed,
    OrderReadyToShip: _ready,
    OrderShipped: _shipped,
    OrderCancelled: _cancelled,
    PaymentProcessed: _payment(OrderSaga.Payment.SECURED),
    PaymentFailed: _payment(OrderSaga.Payment.FAILED),
    PaymentRefunded: _flag("refunded"),
    InventoryReserved: _stock(OrderSaga.Stock.SECURED),
    InventoryReservationFailed: _stock(OrderSaga.Stock.SHORT),
    InventoryReleased: _flag("released"),
    StockShipped: _flag("stock_shipped"),
}

# The wire names of the events the fold reads: a query for the order's history asks for these only.
EVENT_TYPES = frozenset(event_class.event_type for event_class in _EFFECTS)


def fold(state: OrderHistory, event: DomainEvent, happened_at: dt.datetime) -> OrderHistory:
    """The state after ``event``, which happened at ``happened_at``."""
    try:
        effect = _EFFECTS[type(event)]
    except KeyError:
        raise TypeError(f"{type(event).__name__} is not an event of an order's history") from None
    return replace(effect(state, event, happened_at), events=state.events + 1)


def fold_all(state: OrderHistory, events: Iterable[tuple[DomainEvent, dt.datetime]]) -> OrderHistory:
    return reduce(lambda folded, item: fold(folded, *item), events, state)
