"""The shipping context's subscriptions: book a carrier when an order is ready, call it off when cancelled."""

from customers.events import CustomerForgotten
from orders.events import OrderCancelled, OrderReadyToShip
from outbox.events import Envelope
from outbox.subscriptions import Subscription

from .services import shipment_book, shipment_cancel, shipments_forget_customer


def book_shipment(event: OrderReadyToShip, envelope: Envelope) -> None:
    shipment_book(
        order_id=event.order_id,
        address=event.shipping_address.model_dump(),
        parcels=sum(line.quantity for line in event.lines),
    )


def cancel_shipment(event: OrderCancelled, envelope: Envelope) -> None:
    shipment_cancel(order_id=event.order_id)


def forget_customer(event: CustomerForgotten, envelope: Envelope) -> None:
    shipments_forget_customer(order_ids=list(event.order_ids))


SUBSCRIPTIONS = [
    # The carrier is a downstream service: five failed bookings in a row open the circuit, and bookings
    # wait (spending no attempts) until a probe gets through, 15 s later, instead of dying one by one.
    Subscription(OrderReadyToShip, book_shipment, breaker_threshold=5, breaker_cooldown=15),
    Subscription(OrderCancelled, cancel_shipment),
    Subscription(CustomerForgotten, forget_customer),
]
