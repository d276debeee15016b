"""The order saga: a persisted process manager that drives one order from
confirmed to shipped, or to cancelled.

It learns facts from other contexts' events (payment secured or failed, stock
secured or short, shipment arranged) and from the order itself (cancelled),
one entry point per fact, named after it (``on_payment_secured``, ...; the
handlers in orders/handlers.py call them), records them on
:class:`OrderSaga`, then asks :func:`decide` what to do next:
the first row of its decision table, :data:`TRANSITIONS`, that applies.
Facts only move forward and the outcome is decided once, so any order of
arrival and any duplicate lead to the same decision.

Locks: the saga row first, then the order row, each ``FOR UPDATE``; a
customer's cancellation locks only the order. Compensation (refund, release)
is not the saga's to do: payments and inventory react to ``OrderCancelled``.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction

from config.db import locked_or_created

from . import services
from .events import OrderCancelled, OrderReadyToShip, OrderShipped
from .models import Order, OrderSaga

Outcome = OrderSaga.Outcome


@dataclass(frozen=True)
class Decision:
    step: str  # "none", "mark_ready", "mark_shipped", "cancel" or "adopt_cancelled"
    code: str = ""
    reason: str = ""


NOTHING = Decision("none")


@dataclass(frozen=True)
class Transition:
    """A row of the saga's decision table: in a ``source`` outcome, when ``applies``, take ``step``.

    ``when``, ``target`` and ``publishes`` say the same in words, for people
    and for the flow diagram in docs/events.md (outbox.sagas reads them).
    """

    source: tuple[str, ...]
    when: str
    applies: Callable[[OrderSaga, str], bool]  # (saga, order status)
    step: str
    target: str
    publishes: str = ""  # the event the step's service publishes
    code: str = ""
    reason: Callable[[OrderSaga], str] = lambda saga: ""

    def decision(self, saga: OrderSaga) -> Decision:
        return Decision(self.step, self.code, self.reason(saga))


# The first row that applies wins; a shipped or cancelled saga has none left.
TRANSITIONS = (
    Transition(
        (Outcome.PENDING, Outcome.READY_TO_SHIP),
        "the customer or staff cancelled the order",
        lambda saga, status: status == Order.Status.CANCELLED,
        "adopt_cancelled",
        Outcome.CANCELLED,
    ),
    Transition(
        (Outcome.PENDING,),
        "payment failed",
        lambda saga, status: saga.payment == OrderSaga.Payment.FAILED,
        "cancel",
        Outcome.CANCELLED,
        publishes=OrderCancelled.event_type,
        code=Order.CancelCode.PAYMENT_FAILED,
        reason=lambda saga: f"Payment failed: {saga.payment_failure}",
    ),
    Transition(
        (Outcome.PENDING,),
        "stock short",
        lambda saga, status: saga.stock == OrderSaga.Stock.SHORT,
        "cancel",
        Outcome.CANCELLED,
        publishes=OrderCancelled.event_type,
        code=Order.CancelCode.OUT_OF_STOCK,
        reason=lambda saga: f"Out of stock: {', '.join(saga.short_skus)}",
    ),
    Transition(
        (Outcome.PENDING,),
        "payment and stock secured",
        lambda saga, status: saga.payment_secured and saga.stock_secured,
        "mark_ready",
        Outcome.READY_TO_SHIP,
        publishes=OrderReadyToShip.event_type,
    ),
    Transition(
        (Outcome.READY_TO_SHIP,),
        "shipment arranged",
        lambda saga, status: bool(saga.shipment),
        "mark_shipped",
        Outcome.SHIPPED,
        publishes=OrderShipped.event_type,
    ),
)


def decide(saga: OrderSaga, order_status: str) -> Decision:
    """The next step for the saga, from its facts and the order's status alone: the first row that applies."""
    for row in TRANSITIONS:
        if saga.outcome in row.source and row.applies(saga, order_status):
            return row.decision(saga)
    return NOTHING


def on_payment_secured(*, order_id: UUID) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_payment_secured(), payment_answered=True)


def on_payment_failed(*, order_id: UUID, reason: str) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_payment_failed(reason), payment_answered=True)


def on_stock_secured(*, order_id: UUID) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_stock_secured())


def on_stock_short(*, order_id: UUID, skus: list[str]) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_stock_short(skus))


def on_shipment_arranged(
    *, order_id: UUID, carrier: str, tracking_number: str, estimated_delivery: dt.date
) -> OrderSaga:
    return _learn(
        order_id,
        lambda saga: saga.learn_shipment(
            carrier=carrier, tracking_number=tracking_number, estimated_delivery=estimated_delivery
        ),
    )


def on_order_cancelled(*, order_id: UUID) -> OrderSaga:
    """The order says it is cancelled: nothing to learn, the order's status tells."""
    return _learn(order_id, lambda saga: None)


@transaction.atomic
def _learn(order_id: UUID, learn: Callable[[OrderSaga], None], *, payment_answered: bool = False) -> OrderSaga:
    saga = locked_or_created(OrderSaga, order_id=order_id)  # created for an order confirmed before sagas were stored
    order = Order.objects.select_for_update().get(pk=order_id)
    learn(saga)
    if payment_answered:  # payments is done with the card token: shred it
        services.payment_token_forget(order_id=order_id)
    while (decision := decide(saga, order.status)) != NOTHING:
        order = _carry_out(decision, saga, order)
    saga.save()
    return saga


def _carry_out(decision: Decision, saga: OrderSaga, order: Order) -> Order:
    if decision.step == "mark_ready":
        order, saga.outcome = services.order_mark_ready(order_id=order.id), Outcome.READY_TO_SHIP
    elif decision.step == "mark_shipped":
        shipment = saga.shipment
        if not shipment:  # the transition to mark_shipped needs it
            raise ValueError(f"order {order.id}: marking it shipped needs the shipment the saga learnt")
        order = services.order_mark_shipped(
            order_id=order.id,
            carrier=shipment["carrier"],
            tracking_number=shipment["tracking_number"],
            estimated_delivery=dt.date.fromisoformat(shipment["estimated_delivery"]),
        )
        saga.outcome = Outcome.SHIPPED
    elif decision.step == "cancel":
        order = services.order_cancel(order_id=order.id, reason=decision.reason, code=decision.code)
        saga.outcome = Outcome.CANCELLED
    elif decision.step == "adopt_cancelled":
        saga.outcome = Outcome.CANCELLED
    else:
        raise ValueError(f"Unknown saga step {decision.step!r}")
    return order
