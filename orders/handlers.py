"""The orders context's subscriptions: the order saga, fed by the other contexts' events."""

from customers.events import CustomerForgotten
from inventory.events import InventoryReservationFailed, InventoryReserved
from outbox.events import Envelope
from outbox.sagas import Saga
from outbox.subscriptions import Subscription
from payments.events import PaymentFailed, PaymentProcessed
from shipping.events import ShippingArranged

from . import saga, services
from .events import OrderCancelled


def saga_payment_processed(event: PaymentProcessed, envelope: Envelope) -> None:
    saga.saga_payment_secured(order_id=event.order_id)


def saga_payment_failed(event: PaymentFailed, envelope: Envelope) -> None:
    saga.saga_payment_failed(order_id=event.order_id, reason=event.reason)


def saga_inventory_reserved(event: InventoryReserved, envelope: Envelope) -> None:
    saga.saga_stock_secured(order_id=event.order_id)


def saga_inventory_short(event: InventoryReservationFailed, envelope: Envelope) -> None:
    saga.saga_stock_short(order_id=event.order_id, skus=[s.sku for s in event.shortages])


def saga_shipping_arranged(event: ShippingArranged, envelope: Envelope) -> None:
    saga.saga_shipment_arranged(
        order_id=event.order_id,
        carrier=event.carrier,
        tracking_number=event.tracking_number,
        estimated_delivery=event.estimated_delivery,
    )


def saga_order_cancelled(event: OrderCancelled, envelope: Envelope) -> None:
    saga.saga_order_cancelled(order_id=event.order_id)


def forget_customer(event: CustomerForgotten, envelope: Envelope) -> None:
    services.orders_forget_customer(customer_id=event.customer_id)


SUBSCRIPTIONS = [
    Subscription(PaymentProcessed, saga_payment_processed, backoff_base=0.5),
    Subscription(PaymentFailed, saga_payment_failed, backoff_base=0.5),
    Subscription(InventoryReserved, saga_inventory_reserved, backoff_base=0.5),
    Subscription(InventoryReservationFailed, saga_inventory_short, backoff_base=0.5),
    Subscription(ShippingArranged, saga_shipping_arranged, backoff_base=0.5),
    Subscription(OrderCancelled, saga_order_cancelled, backoff_base=0.5),
    Subscription(CustomerForgotten, forget_customer),
]

# Every handler above but the last feeds the saga; its decision table is drawn in docs/events.md.
SAGAS = [Saga("order saga", fed_by=[s.handler for s in SUBSCRIPTIONS[:-1]], transitions=saga.TRANSITIONS)]
