"""Factories for the fulfilment contexts' tests: customers, products with stock, orders, events.

Products and orders are made through the contexts' services, as the shop
makes them, so every factory-made object keeps the contexts' invariants.
"""

import itertools
import uuid
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from inventory.models import Product
from inventory.services import product_ensure
from notifications.models import Notification
from orders.models import Order
from orders.services import LineRequest, order_confirm, order_place
from outbox.events import DomainEvent, Envelope
from outbox.models import Delivery
from outbox.relay import fan_out
from outbox.runner import run_deliveries

_skus = itertools.count(1)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}-{uuid.uuid4().hex[:6]}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@customers.example")
    password = factory.django.Password("customer-pass")


def make_product(*, price: str = "10.00", on_hand: int = 100, currency: str = "EUR", sku: str = "") -> Product:
    """A product with ``on_hand`` units, under a SKU no other test uses."""
    sku = sku or f"SKU-{next(_skus):04d}-{uuid.uuid4().hex[:6].upper()}"
    return product_ensure(sku=sku, name=f"Product {sku}", price=Decimal(price), currency=currency, on_hand=on_hand)


ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}


def place_order(
    *, customer=None, lines: list[tuple[Product, int]] | None = None, token: str = "tok_visa", confirm: bool = False
) -> Order:
    """A draft order (or a confirmed one) through the orders services."""
    customer = customer or CustomerFactory()
    lines = lines or [(make_product(), 1)]
    order = order_place(
        customer_id=customer.pk,
        lines=[LineRequest(sku=product.sku, quantity=quantity) for product, quantity in lines],
        shipping_address=ADDRESS,
        payment_token=token,
    )
    return order_confirm(order_id=order.id, by_user_id=customer.pk) if confirm else order


# An order's deliveries from confirmed to shipped, one at a time in this order, as workers would run them.
# (The payments and shipping handlers call the sandbox providers: their tests need the "sandbox" database.)
CONFIRMED_TO_SHIPPED = (
    ("orders.OrderConfirmed", "payments.authorise_payment"),
    ("orders.OrderConfirmed", "inventory.reserve_stock"),
    ("payments.PaymentProcessed", "orders.record_payment_secured"),
    ("inventory.InventoryReserved", "orders.record_stock_secured"),
    ("orders.OrderReadyToShip", "shipping.book_shipment"),
    ("shipping.ShippingArranged", "orders.record_shipment_arranged"),
    ("orders.OrderShipped", "inventory.ship_stock"),
)


def run_delivery(order: Order, event_type: str, handler: str) -> None:
    """Run the delivery of the order's ``event_type`` to ``handler`` in-process, with the outbox's own runner."""
    fan_out(batch_size=1000)
    delivery = Delivery.objects.get(event__correlation_id=order.correlation_id, event__type=event_type, handler=handler)
    report = run_deliveries([delivery.id])
    assert delivery.id in report.done, f"{handler} did not finish {event_type}: {report}"


def take_through(order: Order, steps: tuple[tuple[str, str], ...] = CONFIRMED_TO_SHIPPED) -> Order:
    """Run the order's deliveries ``steps`` one by one (by default, confirmed to shipped); the order, fresh."""
    for event_type, handler in steps:
        run_delivery(order, event_type, handler)
    order.refresh_from_db()
    return order


def envelope_for(
    event: DomainEvent,
    *,
    event_id: uuid.UUID | None = None,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
) -> Envelope:
    """The envelope the outbox would hand a handler along with ``event``."""
    return Envelope(
        event_id=event_id or uuid.uuid4(),
        type=event.event_type,
        version=event.version,
        occurred_at=timezone.now(),
        aggregate_type=event.aggregate_type,
        aggregate_id=event.aggregate_id,
        correlation_id=correlation_id or uuid.uuid4(),
        causation_id=causation_id,
    )


def handle(handler, event: DomainEvent, envelope: Envelope | None = None) -> Envelope:
    """Run a handler in-process as the runner does: inside a transaction (a savepoint in tests)."""
    envelope = envelope or envelope_for(event)
    with transaction.atomic():
        handler(event, envelope)
    return envelope


def make_notification(*, kind: str = "order_confirmed", **fields) -> Notification:
    """A notification row as a handler commits it (pending, without its on-commit send), unless ``fields`` say else."""
    event_id = uuid.uuid4()
    return Notification.objects.create(
        **{
            "event_id": event_id,
            "kind": kind,
            "order_id": uuid.uuid4(),
            "recipient": "grace@example.com",
            "subject": f"About your order ({kind})",
            "body": "Thank you.",
            "message_id": f"<{kind}.{event_id}@shop.example>",
            **fields,
        }
    )
