"""The orders context's use cases: the only code that changes orders.

Each service is one transaction that locks the order row (``select_for_update``),
moves it through a model method that refuses illegal transitions
(:class:`InvalidOrderTransition`), and publishes the event that records the
move with the order's own ``correlation_id``, so one order's whole life is one
correlation.

Prices. Inventory owns the catalogue. ``order_place`` asks for the current
prices through inventory's published read API
(:func:`inventory.selectors.catalogue_prices`, plain immutable values, no
models) and copies them onto the order lines, so the order keeps the price the
customer saw even if the catalogue changes later. A synchronous read is the
right tool here: placing an order must price it exactly now, which a copy of
the catalogue fed by events could only do approximately; it is a query, never
a write into another context.
"""

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import transaction
from pydantic import ValidationError

from inventory.selectors import CataloguePrice, catalogue_prices
from outbox.events import Money
from outbox.publishing import publish

from .events import (
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    ShippingAddress,
)
from .events import (
    OrderLine as LineValue,
)
from .models import InvalidOrder, Order, OrderLine, OrderSaga

MAX_LINES = 100
MAX_QUANTITY = 10_000  # units of one SKU on one order
MAX_TOKEN_LENGTH = Order._meta.get_field("payment_token").max_length


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@transaction.atomic
def order_place(
    *,
    customer_id: int,
    lines: Sequence[LineRequest | Mapping[str, Any]],
    shipping_address: ShippingAddress | Mapping[str, str],
    payment_token: str,
) -> Order:
    """Create a draft order priced from the catalogue as it is now."""
    requested = _valid_lines(lines)
    address = _valid_address(shipping_address)
    if not payment_token.strip():
        raise InvalidOrder("A payment token is required.")
    if len(payment_token.strip()) > MAX_TOKEN_LENGTH:
        raise InvalidOrder(f"A payment token has at most {MAX_TOKEN_LENGTH} characters.")
    customer = get_user_model().objects.filter(pk=customer_id).first()
    if customer is None:
        raise InvalidOrder(f"No customer has id {customer_id}.")
    prices = _prices_for(requested)
    currency = _single_currency(prices)
    total = _within_limit(sum((prices[r.sku].price * r.quantity for r in requested), Decimal("0.00")), currency)
    order = Order.objects.create(
        customer=customer,
        customer_email=customer.email,
        currency=currency,
        total_amount=total,
        shipping_address=address.model_dump(),
        payment_token=payment_token.strip(),
    )
    OrderLine.objects.bulk_create(
        OrderLine(order=order, sku=r.sku, name=prices[r.sku].name, quantity=r.quantity, unit_price=prices[r.sku].price)
        for r in requested
    )
    _publish(
        order,
        OrderPlaced(
            order_id=order.id,
            customer_id=customer.pk,
            lines=_line_values(order),
            total=_total(order),
            shipping_address=address,
        ),
    )
    return order


@transaction.atomic
def order_confirm(*, order_id: UUID) -> Order:
    """Confirm a draft order and start its saga. Returns at once: payment, stock and
    shipping follow asynchronously, driven by the events."""
    order = _order_for_update(order_id)
    order.confirm()
    order.save(update_fields=["status", "confirmed_at", "updated_at"])
    OrderSaga.objects.create(order=order)
    _publish(
        order,
        OrderConfirmed(
            order_id=order.id,
            total=_total(order),
            lines=_line_values(order),
            customer_id=order.customer_id,
            customer_email=order.customer_email,
            shipping_address=ShippingAddress.model_validate(order.shipping_address),
            payment_token=order.payment_token,
        ),
    )
    return order


@transaction.atomic
def order_cancel(*, order_id: UUID, reason: str, code: str = Order.CancelCode.CUSTOMER) -> Order:
    """Cancel an order that has not shipped; a shipped one raises InvalidOrderTransition."""
    order = _order_for_update(order_id)
    order.cancel(code=code, reason=reason.strip() or "No reason given.")
    order.save(update_fields=["status", "cancel_code", "cancel_reason", "cancelled_at", "updated_at"])
    saga = OrderSaga.objects.filter(order=order).first()
    _publish(
        order,
        OrderCancelled(
            order_id=order.id,
            code=order.cancel_code,
            reason=order.cancel_reason,
            refund_due=bool(saga and saga.payment_secured),
            total=_total(order),
            customer_email=order.customer_email,
        ),
    )
    return order


@transaction.atomic
def order_mark_ready(*, order_id: UUID) -> Order:
    order = _order_for_update(order_id)
    order.mark_ready_to_ship()
    order.save(update_fields=["status", "updated_at"])
    _publish(
        order,
        OrderReadyToShip(
            order_id=order.id,
            lines=_line_values(order),
            shipping_address=ShippingAddress.model_validate(order.shipping_address),
        ),
    )
    return order


@transaction.atomic
def order_mark_shipped(*, order_id: UUID, carrier: str, tracking_number: str, estimated_delivery: dt.date) -> Order:
    order = _order_for_update(order_id)
    order.mark_shipped(carrier=carrier, tracking_number=tracking_number, estimated_delivery=estimated_delivery)
    order.save(update_fields=["status", "carrier", "tracking_number", "estimated_delivery", "shipped_at", "updated_at"])
    _publish(
        order,
        OrderShipped(
            order_id=order.id,
            carrier=carrier,
            tracking_number=tracking_number,
            estimated_delivery=estimated_delivery,
            customer_email=order.customer_email,
        ),
    )
    return order


def _order_for_update(order_id: UUID) -> Order:
    try:
        return Order.objects.select_for_update().get(pk=order_id)
    except Order.DoesNotExist:
        raise InvalidOrder(f"No order has id {order_id}.") from None


def _publish(order: Order, event) -> None:
    publish(event, correlation_id=order.correlation_id)


def _valid_lines(lines: Sequence[LineRequest | Mapping[str, Any]]) -> list[LineRequest]:
    try:
        requested = [line if isinstance(line, LineRequest) else LineRequest(**line) for line in lines]
    except TypeError:
        raise InvalidOrder("Each line needs exactly a sku and a quantity.") from None
    if not 1 <= len(requested) <= MAX_LINES:
        raise InvalidOrder(f"An order has between 1 and {MAX_LINES} lines; this one has {len(requested)}.")
    skus = [r.sku for r in requested]
    if len(set(skus)) != len(skus):
        raise InvalidOrder("Each SKU may appear on one line only; add up the quantities instead.")
    for r in requested:
        if not isinstance(r.quantity, int) or r.quantity < 1:
            raise InvalidOrder(f"The quantity of {r.sku} must be a whole number of at least 1.")
        if r.quantity > MAX_QUANTITY:
            raise InvalidOrder(f"The quantity of {r.sku} must be at most {MAX_QUANTITY}.")
    return requested


def _valid_address(address: ShippingAddress | Mapping[str, str]) -> ShippingAddress:
    if isinstance(address, ShippingAddress):
        return address
    try:
        return ShippingAddress.model_validate(dict(address))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidOrder(f"The shipping address is incomplete or invalid ({problems}).") from None


def _prices_for(requested: list[LineRequest]) -> dict[str, CataloguePrice]:
    prices = catalogue_prices(skus=[r.sku for r in requested])
    unknown = sorted({r.sku for r in requested} - set(prices))
    if unknown:
        raise InvalidOrder(f"No product has SKU {', '.join(unknown)}.")
    return prices


def _single_currency(prices: dict[str, CataloguePrice]) -> str:
    currencies = {p.currency for p in prices.values()}
    if len(currencies) != 1:
        raise InvalidOrder(f"All lines of one order must be in one currency, not {', '.join(sorted(currencies))}.")
    return currencies.pop()


def _within_limit(total: Decimal, currency: str) -> Decimal:
    field = Order._meta.get_field("total_amount")
    limit = Decimal(10) ** (field.max_digits - field.decimal_places)
    if total >= limit:
        raise InvalidOrder(f"The order total, {total} {currency}, is over the limit of one order: split it up.")
    return total


def _total(order: Order) -> Money:
    return Money(amount=order.total_amount, currency=order.currency)


def _line_values(order: Order) -> tuple[LineValue, ...]:
    return tuple(
        LineValue(
            sku=line.sku,
            name=line.name,
            quantity=line.quantity,
            unit_price=Money(amount=line.unit_price, currency=order.currency),
        )
        for line in order.lines.all()
    )
