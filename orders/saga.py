"""The order saga: a persisted process manager that drives one order from
confirmed to shipped, or to cancelled.

It learns facts from other contexts' events (payment secured or failed, stock
secured or short, shipment arranged) and from the order itself (cancelled),
records them on :class:`OrderSaga`, then asks :func:`decide` what to do next.
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

from . import services
from .models import Order, OrderSaga

Outcome = OrderSaga.Outcome


@dataclass(frozen=True)
class Decision:
    step: str  # "none", "mark_ready", "mark_shipped", "cancel" or "adopt_cancelled"
    code: str = ""
    reason: str = ""


NOTHING = Decision("none")


def decide(saga: OrderSaga, order_status: str) -> Decision:
    """The next step for the saga, from its facts and the order's status alone."""
    if saga.outcome in (Outcome.SHIPPED, Outcome.CANCELLED):
        return NOTHING
    if order_status == Order.Status.CANCELLED:
        return Decision("adopt_cancelled")  # the customer (or staff) cancelled it
    if saga.outcome == Outcome.PENDING:
        return _decide_pending(saga)
    if saga.outcome == Outcome.READY_TO_SHIP and saga.shipment:
        return Decision("mark_shipped")
    return NOTHING


def _decide_pending(saga: OrderSaga) -> Decision:
    if saga.payment == OrderSaga.Payment.FAILED:
        return Decision("cancel", Order.CancelCode.PAYMENT_FAILED, f"Payment failed: {saga.payment_failure}")
    if saga.stock == OrderSaga.Stock.SHORT:
        return Decision("cancel", Order.CancelCode.OUT_OF_STOCK, f"Out of stock: {', '.join(saga.short_skus)}")
    if saga.payment_secured and saga.stock_secured:
        return Decision("mark_ready")
    return NOTHING


def saga_payment_secured(*, order_id: UUID) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_payment_secured())


def saga_payment_failed(*, order_id: UUID, reason: str) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_payment_failed(reason))


def saga_stock_secured(*, order_id: UUID) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_stock_secured())


def saga_stock_short(*, order_id: UUID, skus: list[str]) -> OrderSaga:
    return _learn(order_id, lambda saga: saga.learn_stock_short(skus))


def saga_shipment_arranged(
    *, order_id: UUID, carrier: str, tracking_number: str, estimated_delivery: dt.date
) -> OrderSaga:
    return _learn(
        order_id,
        lambda saga: saga.learn_shipment(
            carrier=carrier, tracking_number=tracking_number, estimated_delivery=estimated_delivery
        ),
    )


def saga_order_cancelled(*, order_id: UUID) -> OrderSaga:
    """The order says it is cancelled: nothing to learn, the order's status tells."""
    return _learn(order_id, lambda saga: None)


@transaction.atomic
def _learn(order_id: UUID, learn: Callable[[OrderSaga], None]) -> OrderSaga:
    saga = _saga_for_update(order_id)
    order = Order.objects.select_for_update().get(pk=order_id)
    learn(saga)
    while (decision := decide(saga, order.status)) != NOTHING:
        order = _carry_out(decision, saga, order)
    saga.save()
    return saga


def _saga_for_update(order_id: UUID) -> OrderSaga:
    saga = OrderSaga.objects.select_for_update().filter(order_id=order_id).first()
    if saga is None:  # an order confirmed before sagas were stored
        OrderSaga.objects.get_or_create(order_id=order_id)
        saga = OrderSaga.objects.select_for_update().get(order_id=order_id)
    return saga


def _carry_out(decision: Decision, saga: OrderSaga, order: Order) -> Order:
    if decision.step == "mark_ready":
        order, saga.outcome = services.order_mark_ready(order_id=order.id), Outcome.READY_TO_SHIP
    elif decision.step == "mark_shipped":
        shipment = saga.shipment
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
