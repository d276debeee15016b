"""Read-side queries of the orders context.

An order's payment, stock and shipment state, as the shop's pages and the API
show it, comes from what orders itself knows: the saga's facts and the order's
own events (a refund or a release happens after the saga is done, so only the
event log tells). No other context's tables are read.
"""

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from inventory.events import InventoryReleased, StockShipped
from outbox.models import Delivery, OutboxEvent
from payments.events import PaymentRefunded

from .models import Order, OrderSaga

User = AbstractBaseUser | AnonymousUser


class PaymentStatus:
    NOT_REQUESTED = "not_requested"
    PENDING = "pending"
    AUTHORISED = "authorised"
    FAILED = "failed"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"

    # value: what it means, for the schema and the pages
    MEANINGS = {
        NOT_REQUESTED: "The order is not confirmed yet (or was cancelled as a draft): no payment asked for.",
        PENDING: "Asked for; the payment provider has not answered yet.",
        AUTHORISED: "The order total is authorised.",
        FAILED: "Declined, or the provider stayed unavailable: the order is cancelled.",
        REFUNDED: "Taken, then given back after the order was cancelled.",
        CANCELLED: "The order was cancelled before any payment was taken.",
    }


class InventoryStatus:
    NOT_REQUESTED = "not_requested"
    PENDING = "pending"
    RESERVED = "reserved"
    SHORT = "short"
    RELEASED = "released"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"

    MEANINGS = {
        NOT_REQUESTED: "The order is not confirmed yet (or was cancelled as a draft): nothing reserved.",
        PENDING: "Reservation asked for; not answered yet.",
        RESERVED: "Every line is reserved in the warehouse.",
        SHORT: "Some line could not be reserved (out of stock): the order is cancelled.",
        RELEASED: "Reserved, then returned to stock after the order was cancelled.",
        SHIPPED: "Reserved and gone out of the warehouse with the shipment.",
        CANCELLED: "The order was cancelled before any stock was reserved.",
    }


@dataclass(frozen=True)
class ShipmentState:
    carrier: str
    tracking_number: str
    estimated_delivery: dt.date | None


def order_get(*, order_id: UUID) -> Order | None:
    return Order.objects.select_related("saga").prefetch_related("lines").filter(pk=order_id).first()


def orders_of_customer(*, customer_id: int) -> QuerySet[Order]:
    return Order.objects.filter(customer_id=customer_id).prefetch_related("lines").order_by("-created_at")


def orders_visible_to(*, user: User, status: str | None = None) -> QuerySet[Order]:
    """Staff see every order; anyone else only their own. Newest first, each with its progress.

    Every order of the result has the attributes :func:`order_progress` reads.
    """
    orders = Order.objects.all() if user.is_staff else Order.objects.filter(customer_id=user.pk)
    if status:
        orders = orders.filter(status=status)
    return _with_progress(orders).order_by("-created_at", "id")


def order_visible_to(*, user: User, order_id: UUID) -> Order | None:
    """The order, when ``user`` may see it (its customer, or staff); None otherwise, as if it did not exist."""
    return orders_visible_to(user=user).filter(pk=order_id).first()


def order_correlation_id(*, order_id: UUID) -> UUID | None:
    """The workflow of the order's whole life, or None when there is no such order: traces resolve order ids by it."""
    return Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()


def order_timeline(*, order_id: UUID) -> QuerySet[OutboxEvent]:
    """Every event of the order's life, from every context, in the order they were written.

    They share the order's correlation id (see ``orders.services``). The
    order they were written in is causal: an event is written by the handler
    of its cause, which ran after the cause committed. Each event comes with
    its deliveries (one per subscribed handler), in the order they were made.
    """
    correlation_id = order_correlation_id(order_id=order_id)
    deliveries = Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))
    return OutboxEvent.objects.filter(correlation_id=correlation_id).prefetch_related(deliveries).order_by("id")


def order_is_settled(*, order: Order) -> bool:
    """True when nothing more will happen to the order on its own.

    A draft waits for its customer; a shipped or cancelled order is settled
    once every event of its life is fanned out and every delivery finished
    (a cancellation still releases stock and refunds after the status says
    cancelled). A confirmed or ready-to-ship order is in flight.
    """
    if order.status == Order.Status.DRAFT:
        return True
    if not order.is_final:
        return False
    events = OutboxEvent.objects.filter(correlation_id=order.correlation_id)
    unfinished = Delivery.objects.filter(event__correlation_id=order.correlation_id, status__in=Delivery.UNFINISHED)
    return not events.filter(relayed_at__isnull=True).exists() and not unfinished.exists()


def order_payment_status(*, order: Order) -> str:
    """One of :class:`PaymentStatus`, from the saga's facts and the order's events."""
    saga = _saga(order)
    if saga is None:
        return PaymentStatus.NOT_REQUESTED
    if _flag(order, "payment_refunded"):
        return PaymentStatus.REFUNDED
    if saga.payment == OrderSaga.Payment.FAILED:
        return PaymentStatus.FAILED
    if saga.payment == OrderSaga.Payment.SECURED:
        return PaymentStatus.AUTHORISED
    return PaymentStatus.CANCELLED if order.status == Order.Status.CANCELLED else PaymentStatus.PENDING


def order_inventory_status(*, order: Order) -> str:
    """One of :class:`InventoryStatus`, from the saga's facts and the order's events."""
    saga = _saga(order)
    if saga is None:
        return InventoryStatus.NOT_REQUESTED
    if _flag(order, "stock_released"):
        return InventoryStatus.RELEASED
    if saga.stock == OrderSaga.Stock.SHORT:
        return InventoryStatus.SHORT
    if _flag(order, "stock_shipped"):
        return InventoryStatus.SHIPPED
    if saga.stock == OrderSaga.Stock.SECURED:
        return InventoryStatus.RESERVED
    return InventoryStatus.CANCELLED if order.status == Order.Status.CANCELLED else InventoryStatus.PENDING


def order_shipment(*, order: Order) -> ShipmentState | None:
    if not order.tracking_number:
        return None
    return ShipmentState(
        carrier=order.carrier, tracking_number=order.tracking_number, estimated_delivery=order.estimated_delivery
    )


# The order's events that say what happened after the saga decided; annotated on lists in one query.
_FLAGS = {
    "payment_refunded": PaymentRefunded.event_type,
    "stock_released": InventoryReleased.event_type,
    "stock_shipped": StockShipped.event_type,
}


def _with_progress(orders: QuerySet[Order]) -> QuerySet[Order]:
    def happened(event_type: str) -> Exists:
        return Exists(OutboxEvent.objects.filter(correlation_id=OuterRef("correlation_id"), type=event_type))

    return (
        orders.select_related("saga", "customer")
        .prefetch_related("lines")
        .annotate(**{name: happened(event_type) for name, event_type in _FLAGS.items()})
    )


def _flag(order: Order, name: str) -> bool:
    if hasattr(order, name):  # annotated by _with_progress
        return getattr(order, name)
    return OutboxEvent.objects.filter(correlation_id=order.correlation_id, type=_FLAGS[name]).exists()


def _saga(order: Order) -> OrderSaga | None:
    return getattr(order, "saga", None)  # a draft has none (the reverse accessor raises an AttributeError)
