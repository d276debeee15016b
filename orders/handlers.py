"""The orders context's subscriptions: each records in the order saga the fact an event tells (orders/saga.py)."""

from customers.events import CustomerForgotten
from inventory.events import InventoryReservationFailed, InventoryReserved
from outbox.events import Envelope
from outbox.sagas import Saga
from outbox.subscriptions import Subscription
from payments.events import PaymentFailed, PaymentProcessed
from shipping.events import ShippingArranged

from . import saga, services
from .events import OrderCancelled


def record_payment_secured(event: PaymentProcessed, envelope: Envelope) -> None:
    saga.on_payment_secured(order_id=event.order_id)


def record_payment_failed(event: PaymentFailed, envelope: Envelope) -> None:
    saga.on_payment_failed(order_id=event.order_id, reason=event.reason)


def record_stock_secured(event: InventoryReserved, envelope: Envelope) -> None:
    saga.on_stock_secured(order_id=event.order_id)


def record_stock_short(event: InventoryReservationFailed, envelope: Envelope) -> None:
    saga.on_stock_short(order_id=event.order_id, skus=[s.sku for s in event.shortages])


def record_shipment_arranged(event: ShippingArranged, envelope: Envelope) -> None:
    saga.on_shipment_arranged(
        order_id=event.order_id,
        carrier=event.carrier,
        tracking_number=event.tracking_number,
        estimated_delivery=event.estimated_delivery,
    )


def record_order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
    saga.on_order_cancelled(order_id=event.order_id)


def forget_customer(event: CustomerForgotten, envelope: Envelope) -> None:
    services.orders_forget_customer(customer_id=event.customer_id)


SUBSCRIPTIONS = [
    Subscription(PaymentProcessed, record_payment_secured),
    Subscription(PaymentFailed, record_payment_failed),
    Subscription(InventoryReserved, record_stock_secured),
    Subscription(InventoryReservationFailed, record_stock_short),
    Subscription(ShippingArranged, record_shipment_arranged),
    Subscription(OrderCancelled, record_order_cancelled),
    Subscription(CustomerForgotten, forget_customer),
]

# Every handler above but the last feeds the saga; its decision table is drawn in docs/events.md.
SAGAS = [Saga("order saga", fed_by=[s.handler for s in SUBSCRIPTIONS[:-1]], transitions=saga.TRANSITIONS)]
