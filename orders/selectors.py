"""Read-side queries of the orders context.

An order's payment, stock and shipment state, as the shop's pages and the API
show it, comes from what orders itself knows: the saga's facts and the order's
own events (a refund or a release happens after the saga is done, so only the
event log tells). No other context's tables are read.

An order as it was at a past time (:func:`order_as_of`) is the fold of its
events up to then (:mod:`orders.history`), turned into the same statuses by
the same rules as the order now.
"""

import datetime as dt
from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, PermissionsMixin
from django.db.models import Exists, OuterRef, Prefetch, QuerySet
from django.utils import timezone

from inventory.events import InventoryReleased, StockShipped
from outbox.events import DomainEvent, EventDecodeError, Money, registry
from outbox.models import Delivery, OutboxEvent
from outbox.selectors import correlation_events, deliveries_held
from payments.events import PaymentRefunded

from . import history
from .events import OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped
from .events import OrderLine as OrderLineValue
from .history import ShipmentState
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
class OrderSnapshot:
    """An order as its events say it was at ``as_of``, in the order detail's terms (:func:`order_as_of`).

    Payment and stock follow the other contexts' events, not the saga's
    learning of them: while an order is in flight, its state now may be a
    step ahead of the order detail, which the saga updates.
    """

    id: UUID
    as_of: dt.datetime
    status: str
    lines: tuple[OrderLineValue, ...]
    total: Money
    shipping_address: dict
    payment_status: str
    inventory_status: str
    shipment: ShipmentState | None
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    shipped_at: dt.datetime | None
    cancel_reason: str | None
    events: int  # how many of the order's events it folds


def orders_of_customer(*, customer_id: int) -> QuerySet[Order]:
    return Order.objects.filter(customer_id=customer_id).prefetch_related("lines").order_by("-created_at")


def user_sees_every_order(*, user: User) -> bool:
    """Whether ``user`` may read any customer's orders: as the admin asks, ``orders.view_order`` (or
    ``orders.change_order``, which includes seeing). Staff status alone is not enough."""
    return _has_perm(user, "orders.view_order") or _has_perm(user, "orders.change_order")


def user_may_confirm(*, user: User, order: Order) -> bool:
    """Whether ``user`` may confirm ``order``: its customer only (staff do not, whatever their permissions).

    The rule :func:`orders.services.order_confirm` enforces; the pages ask it to offer the button.
    """
    return order.customer_id == user.pk


def user_may_cancel(*, user: User, order: Order) -> bool:
    """Whether ``user`` may cancel ``order`` (one they see): its customer, or whoever has ``orders.change_order``.

    The rule :func:`orders.services.order_cancel` enforces; the pages ask it to offer the button.
    """
    return order.customer_id == user.pk or _has_perm(user, "orders.change_order")


def _has_perm(user: User, perm: str) -> bool:
    """Django's permission check; a user model without permissions (no PermissionsMixin) holds none."""
    return isinstance(user, PermissionsMixin | AnonymousUser) and user.has_perm(perm)


def orders_visible_to(*, user: User, status: str | None = None) -> QuerySet[Order]:
    """Every order for those who may see them all (:func:`user_sees_every_order`); anyone else only their own.

    Newest first, each with its progress: every order of the result has the attributes :func:`order_progress` reads.
    """
    orders = Order.objects.all() if user_sees_every_order(user=user) else Order.objects.filter(customer_id=user.pk)
    if status:
        orders = orders.filter(status=status)
    return _with_progress(orders).order_by("-created_at", "id")


def order_visible_to(*, user: User, order_id: UUID) -> Order | None:
    """The order, when ``user`` may see it (its customer, or :func:`user_sees_every_order`); None otherwise, as if it
    did not exist."""
    return orders_visible_to(user=user).filter(pk=order_id).first()


def order_correlation_id(*, order_id: UUID) -> UUID | None:
    """The workflow of the order's whole life, or None when there is no such order: traces resolve order ids by it."""
    return Order.objects.filter(pk=order_id).values_list("correlation_id", flat=True).first()


def order_events(*, order_id: UUID) -> QuerySet[OutboxEvent]:
    """Every event of the order's life, from every context, in the order they were written.

    They share the order's correlation id (see ``orders.services``). The
    order they were written in is causal: an event is written by the handler
    of its cause, which ran after the cause committed. Each event comes with
    its deliveries (one per subscribed handler), in the order they were made.
    """
    correlation_id = order_correlation_id(order_id=order_id)
    if correlation_id is None:  # no such order
        return OutboxEvent.objects.none()
    deliveries = Prefetch("deliveries", queryset=Delivery.objects.order_by("id"))
    return OutboxEvent.objects.filter(correlation_id=correlation_id).prefetch_related(deliveries).order_by("id")


@dataclass(frozen=True)
class TimelineEntry:
    """One event of an order's life, with what caused it and who handled it: as the order page and the admin show it."""

    event: OutboxEvent
    cause_type: str  # the type of the event on the timeline that caused it; "" for the first, or a cause elsewhere
    deliveries: list[Delivery]  # one per subscribed handler, in the order they were made
    holds: dict[int, Delivery]  # of those, each one the relay holds back (an ordered handler's), by what it waits for

    @property
    def context(self) -> str:
        """The context that published it."""
        return self.event.type.partition(".")[0]

    @property
    def name(self) -> str:
        """The event's name without its context."""
        return self.event.type.partition(".")[2]

    @property
    def caused_by(self) -> str:
        """The name of the event that caused it, without its context, when that is on the timeline."""
        return self.cause_type.partition(".")[2]


def order_timeline(*, order_id: UUID) -> list[TimelineEntry]:
    """The order's events (:func:`order_events`), each with the event that caused it and its deliveries."""
    events = list(order_events(order_id=order_id))
    types = {event.event_id: event.type for event in events}
    deliveries = {event.event_id: list(event.deliveries.all()) for event in events}
    holds = deliveries_held(delivery_ids=[d.id for found in deliveries.values() for d in found])
    return [
        TimelineEntry(
            event=event,
            cause_type=types.get(event.causation_id, "") if event.causation_id else "",
            deliveries=deliveries[event.event_id],
            holds={d.id: holds[d.id] for d in deliveries[event.event_id] if d.id in holds},
        )
        for event in events
    ]


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
    return _payment_status(
        payment=saga.payment,
        refunded=_flag(order, "payment_refunded"),
        cancelled=order.status == Order.Status.CANCELLED,
    )


def order_inventory_status(*, order: Order) -> str:
    """One of :class:`InventoryStatus`, from the saga's facts and the order's events."""
    saga = _saga(order)
    if saga is None:
        return InventoryStatus.NOT_REQUESTED
    return _inventory_status(
        stock=saga.stock,
        released=_flag(order, "stock_released"),
        shipped=_flag(order, "stock_shipped"),
        cancelled=order.status == Order.Status.CANCELLED,
    )


def _payment_status(*, payment: str, refunded: bool, cancelled: bool) -> str:
    """Of a confirmed order, from what the saga learnt (``payment``) and what happened after (now or in the past)."""
    if refunded:
        return PaymentStatus.REFUNDED
    if payment == OrderSaga.Payment.FAILED:
        return PaymentStatus.FAILED
    if payment == OrderSaga.Payment.SECURED:
        return PaymentStatus.AUTHORISED
    return PaymentStatus.CANCELLED if cancelled else PaymentStatus.PENDING


def _inventory_status(*, stock: str, released: bool, shipped: bool, cancelled: bool) -> str:
    """Of a confirmed order, from what the saga learnt (``stock``) and what happened after (now or in the past)."""
    if released:
        return InventoryStatus.RELEASED
    if stock == OrderSaga.Stock.SHORT:
        return InventoryStatus.SHORT
    if shipped:
        return InventoryStatus.SHIPPED
    if stock == OrderSaga.Stock.SECURED:
        return InventoryStatus.RESERVED
    return InventoryStatus.CANCELLED if cancelled else InventoryStatus.PENDING


def order_shipment(*, order: Order) -> ShipmentState | None:
    if not order.tracking_number:
        return None
    return ShipmentState(
        carrier=order.carrier, tracking_number=order.tracking_number, estimated_delivery=order.estimated_delivery
    )


class HistoryUnreadable(Exception):
    """An event of the order's history cannot be read by this version of the code (one written by a newer
    release during a rolling deploy, say): the order's past cannot be rebuilt until it can."""


def _decoded(row: OutboxEvent) -> DomainEvent:
    try:
        return registry.decode(row.type, row.version, row.payload)
    except EventDecodeError as exc:
        raise HistoryUnreadable(
            f"The order's history holds event {row.event_id} ({row.type} v{row.version}), which this version "
            "of the shop cannot read; try again once every process runs the release that wrote it."
        ) from exc


def order_as_of(*, order: Order, at: dt.datetime | None) -> OrderSnapshot | None:
    """The order as it was at ``at`` (timezone-aware): the fold of its events that had happened by then.

    None before the order was created. The future is not known yet: ``at``
    later than now, or None, is answered as now, and ``as_of`` says so. Reads
    the order's own events and those the other contexts wrote for it (its
    correlation), a few dozen rows, each decoded through the registry, so an
    event stored in an older version is read in its current shape.

    When an event happened: the order's own changes happened at the time the
    order records for them (``created_at``, ``confirmed_at``, ``cancelled_at``,
    ``shipped_at``), which the log's ``occurred_at`` follows by a few
    microseconds in the same transaction; so the order as of its
    ``confirmed_at`` is confirmed, and an order whose events have all been
    handled is, as of now, what the order detail shows now. Every other
    event happened at its ``occurred_at``.
    """
    if at is not None and timezone.is_naive(at):
        raise ValueError("order_as_of needs a timezone-aware time.")
    at = min(at, timezone.now()) if at is not None else timezone.now()
    rows = correlation_events(correlation_id=order.correlation_id, types=history.EVENT_TYPES)
    happened = ((row, _happened_at(order, row)) for row in rows.iterator())
    events = ((_decoded(row), when) for row, when in happened if when <= at)
    state = history.fold_all(history.OrderHistory(), events)
    if state.placed_at is None:
        return None
    return _snapshot(order, state, at)


def _happened_at(order: Order, row: OutboxEvent) -> dt.datetime:
    recorded = _RECORDED_AT.get(row.type)
    return (getattr(order, recorded) if recorded else None) or row.occurred_at


# The order's own events, and the field of the order that records when each happened.
_RECORDED_AT = {
    OrderPlaced.event_type: "created_at",
    OrderConfirmed.event_type: "confirmed_at",
    OrderCancelled.event_type: "cancelled_at",
    OrderShipped.event_type: "shipped_at",
}


def _snapshot(order: Order, state: history.OrderHistory, at: dt.datetime) -> OrderSnapshot:
    if state.placed_at is None or state.total is None or state.shipping_address is None:
        raise ValueError(f"order {order.id} has no snapshot before it was placed (OrderPlaced sets all three)")
    cancelled = state.status == Order.Status.CANCELLED
    confirmed = state.confirmed_at is not None
    payment = _payment_status(payment=state.payment, refunded=state.refunded, cancelled=cancelled)
    stock = _inventory_status(
        stock=state.stock, released=state.released, shipped=state.stock_shipped, cancelled=cancelled
    )
    return OrderSnapshot(
        id=order.id,
        as_of=at,
        status=state.status,
        lines=state.lines,
        total=state.total,
        shipping_address=state.shipping_address,
        payment_status=payment if confirmed else PaymentStatus.NOT_REQUESTED,
        inventory_status=stock if confirmed else InventoryStatus.NOT_REQUESTED,
        shipment=state.shipment,
        created_at=state.placed_at,
        confirmed_at=state.confirmed_at,
        cancelled_at=state.cancelled_at,
        shipped_at=state.shipped_at,
        cancel_reason=state.cancel_reason if cancelled else None,
        events=state.events,
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
