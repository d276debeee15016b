"""The orders context's use cases: the only code that changes orders.

Each service is one transaction that locks the order row (``select_for_update``),
moves it through a model method that refuses illegal transitions
(:class:`InvalidOrderTransition`), and publishes the event that records the
move with the order's own ``correlation_id``, so one order's whole life is one
correlation.

Prices. Inventory owns the catalogue. ``order_place`` asks for the current
prices through the catalogue port (:mod:`orders.catalogue`, plain immutable
values, no models) and copies them onto the order lines, so the order keeps
the price the customer saw even if the catalogue changes later.

Who may. The rules of who may confirm or cancel an order, and the cancel code
that follows from who cancelled, are enforced here: a person's request names
them (``by_user_id``) and is refused with :class:`OrderForbidden`; every
refusal is a domain error whose message says why, which the API and the
pages show as it is. A request whose fields are at fault raises
:class:`InvalidOrder` with the messages for each field (``errors``).

Retries. A client that got no answer cannot tell whether its request
committed, so it sends it again: ``order_confirm`` returns an order confirmed
before as it is, and ``order_place_once`` returns the order its idempotency
key placed. Neither does anything twice.
"""

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from pydantic import ValidationError

from outbox import personal
from outbox.publishing import publish

from . import selectors
from .catalogue import CataloguePrice, catalogue
from .customer_orders import order_lines, order_total
from .events import (
    ERASED_ADDRESS,
    CancelCode,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderReadyToShip,
    OrderShipped,
    ShippingAddress,
    order_subjects,
    payment_subject,
)
from .models import (
    IdempotencyKey,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    InvalidOrder,
    Order,
    OrderForbidden,
    OrderLine,
    OrderSaga,
)

MAX_LINES = 100
MAX_QUANTITY = 10_000  # units of one SKU on one order
MAX_TOKEN_LENGTH = 100  # a card token, as providers issue them (it is kept only sealed: see order_confirm)


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placement:
    """What :func:`order_place_once` did: the order, and whether an earlier request had placed it."""

    order: Order
    replayed: bool


@dataclass(frozen=True)
class _OrderRequest:
    """A placement's arguments, checked and normalised."""

    customer: Any
    lines: list[LineRequest]
    address: ShippingAddress
    payment_token: str

    def fingerprint(self) -> str:
        """The same for the same request however it was spelt (``gb`` or ``GB``), different for any other."""
        canonical = {
            "lines": [[line.sku, line.quantity] for line in self.lines],
            "shipping_address": self.address.model_dump(mode="json"),
            "payment_token": self.payment_token,
        }
        return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@transaction.atomic
def order_place(
    *,
    customer_id: int,
    lines: Sequence[LineRequest | Mapping[str, Any]],
    shipping_address: ShippingAddress | Mapping[str, str],
    payment_token: str,
) -> Order:
    """Create a draft order priced from the catalogue as it is now."""
    return _new_order(_order_request(customer_id, lines, shipping_address, payment_token), order_id=uuid.uuid4())


@transaction.atomic
def order_place_once(
    *,
    customer_id: int,
    idempotency_key: str,
    lines: Sequence[LineRequest | Mapping[str, Any]],
    shipping_address: ShippingAddress | Mapping[str, str],
    payment_token: str,
) -> Placement:
    """Place the order once per (customer, ``idempotency_key``): a retry of the same request gets the same order.

    The same key with other arguments raises :class:`IdempotencyKeyReused`
    (nothing is written). The key is claimed with an insert before the order
    exists, so two concurrent requests with one key serialise on its unique
    constraint: the second waits for the first to commit, then replays its
    order. A request that fails (invalid, rolled back) leaves the key free.
    """
    key = _valid_key(idempotency_key)
    request = _order_request(customer_id, lines, shipping_address, payment_token)
    order_id, fingerprint = uuid.uuid4(), request.fingerprint()
    earlier = _claim_key(customer=request.customer, key=key, fingerprint=fingerprint, order_id=order_id)
    if earlier is None:
        return Placement(order=_new_order(request, order_id=order_id), replayed=False)
    if earlier.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"The Idempotency-Key {key!r} already placed order {earlier.order_id} from a different request: "
            "send exactly that request again to get that order, or use a new key for a new order.",
            order_id=earlier.order_id,
        )
    return Placement(order=Order.objects.get(pk=earlier.order_id), replayed=True)


def _valid_key(key: str) -> str:
    limit = IdempotencyKey.MAX_LENGTH
    if not key.strip():
        raise InvalidIdempotencyKey("An Idempotency-Key may not be empty: send a fresh UUID per new order.")
    if len(key) > limit:
        raise InvalidIdempotencyKey(f"An Idempotency-Key has at most {limit} characters; this one has {len(key)}.")
    if not (key.isascii() and key.isprintable()):
        raise InvalidIdempotencyKey("An Idempotency-Key is printable ASCII only: a UUID is a good choice.")
    return key


def _claim_key(*, customer: Any, key: str, fingerprint: str, order_id: UUID) -> IdempotencyKey | None:
    """Claim ``key`` for the order about to be made with ``order_id``; or the committed claim of an earlier request.

    The claim is written before its order: its foreign key, like every one
    Django makes, is checked at commit, by which time the order exists.
    """
    earlier = IdempotencyKey.objects.filter(customer=customer, key=key).first()
    if earlier is not None:
        return earlier
    try:
        with transaction.atomic():  # a savepoint: a losing insert must not spoil the transaction
            IdempotencyKey.objects.create(customer=customer, key=key, fingerprint=fingerprint, order_id=order_id)
    except IntegrityError:  # a concurrent request with this key committed first (we waited for it)
        return IdempotencyKey.objects.get(customer=customer, key=key)
    return None


def _order_request(
    customer_id: int,
    lines: Sequence[LineRequest | Mapping[str, Any]],
    shipping_address: ShippingAddress | Mapping[str, str],
    payment_token: str,
) -> _OrderRequest:
    requested = _valid_lines(lines)
    address = _valid_address(shipping_address)
    if not payment_token.strip():
        raise InvalidOrder.in_fields({"payment_token": ["A payment token is required."]})
    if len(payment_token.strip()) > MAX_TOKEN_LENGTH:
        raise InvalidOrder.in_fields({"payment_token": [f"A payment token has at most {MAX_TOKEN_LENGTH} characters."]})
    customer = get_user_model().objects.filter(pk=customer_id).first()
    if customer is None:
        raise InvalidOrder(f"No customer has id {customer_id}.")
    return _OrderRequest(customer=customer, lines=requested, address=address, payment_token=payment_token.strip())


def _new_order(request: _OrderRequest, *, order_id: UUID) -> Order:
    prices = _prices_for(request.lines)
    currency = _single_currency(prices)
    total = _within_limit(sum((prices[r.sku].price * r.quantity for r in request.lines), Decimal("0.00")), currency)
    order = Order.objects.create(
        id=order_id,
        customer=request.customer,
        customer_email=request.customer.email,
        currency=currency,
        total_amount=total,
        shipping_address=request.address.model_dump(),
        # Kept sealed until the confirmation carries it to payments (sealed there too): never in the clear.
        payment_token=personal.seal_value(payment_subject(order_id), request.payment_token),
    )
    OrderLine.objects.bulk_create(
        OrderLine(order=order, sku=r.sku, name=prices[r.sku].name, quantity=r.quantity, unit_price=prices[r.sku].price)
        for r in request.lines
    )
    _publish(
        order,
        OrderPlaced(
            order_id=order.id,
            customer_id=request.customer.pk,
            lines=order_lines(order),
            total=order_total(order),
            shipping_address=request.address,
        ),
    )
    return order


@transaction.atomic
def order_confirm(*, order_id: UUID, by_user_id: int | None = None) -> Order:
    """Confirm a draft order and start its saga. Returns at once: payment, stock and
    shipping follow asynchronously, driven by the events.

    ``by_user_id``: the person confirming, who must be the order's customer
    (anyone else, staff included, raises :class:`OrderForbidden`); None for
    the system itself (a script, a test, the benchmarks).

    Safe to retry: an order that was confirmed is returned as it is now
    (confirmed, shipped or cancelled since), unchanged and with no new event.
    A draft cancelled before any confirmation raises InvalidOrderTransition.
    """
    order = _order_for_update(order_id)
    if by_user_id is not None and not selectors.user_may_confirm(user=_user(by_user_id), order=order):
        raise OrderForbidden("Only the customer who placed an order may confirm it.")
    if order.was_confirmed:
        return order
    payment_token = _payment_token(order)
    order.confirm()
    order.payment_token = ""  # from now on only the event holds it, sealed, until payments has answered
    order.save(update_fields=["status", "confirmed_at", "payment_token", "updated_at"])
    OrderSaga.objects.create(order=order)
    _publish(
        order,
        OrderConfirmed(
            order_id=order.id,
            total=order_total(order),
            lines=order_lines(order),
            customer_id=order.customer_id,
            customer_email=order.customer_email,
            shipping_address=ShippingAddress.model_validate(order.shipping_address),
            payment_token=payment_token,
        ),
    )
    return order


@transaction.atomic
def order_cancel(*, order_id: UUID, reason: str, by_user_id: int | None = None, code: str | None = None) -> Order:
    """Cancel an order that has not shipped; a shipped one raises InvalidOrderTransition.

    Who cancels decides the cancel code. A person (``by_user_id``): the
    order's customer cancels as ``customer``; anyone else needs
    ``orders.change_order`` and cancels as ``staff``, or is refused with
    :class:`OrderForbidden`. The system (the saga: no person) gives its
    ``code`` instead, one of :attr:`Order.SYSTEM_CANCEL_CODES`.

    An order cancelled already is returned as it is (its first reason kept,
    nothing published), so that a retried cancellation is safe.
    """
    order = _order_for_update(order_id)
    code = _cancel_code(order, by_user_id=by_user_id, code=code)
    if order.status == Order.Status.CANCELLED:
        return order
    order.cancel(code=code, reason=reason.strip() or "No reason given.")
    if order.payment_token:  # a draft's: it will never be charged
        order.payment_token = ""
        payment_token_forget(order_id=order.id)
    order.save(update_fields=["status", "cancel_code", "cancel_reason", "cancelled_at", "payment_token", "updated_at"])
    saga = OrderSaga.objects.filter(order=order).first()
    _publish(
        order,
        OrderCancelled(
            order_id=order.id,
            code=cast("CancelCode", order.cancel_code),  # one of Order.CancelCode: _cancel_code chose it
            reason=order.cancel_reason,
            refund_due=bool(saga and saga.payment_secured),
            total=order_total(order),
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
            lines=order_lines(order),
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


def _cancel_code(order: Order, *, by_user_id: int | None, code: str | None) -> str:
    """The code of a cancellation by this person, or by the system with this code; OrderForbidden if they may not."""
    if (by_user_id is None) == (code is None):
        raise TypeError("order_cancel takes exactly one of by_user_id (a person cancels) and code (the system does).")
    if by_user_id is None:
        if code not in Order.SYSTEM_CANCEL_CODES:
            raise ValueError(f"{code!r} is not a system's cancel code: one of {', '.join(Order.SYSTEM_CANCEL_CODES)}.")
        return code
    user = _user(by_user_id)
    if not selectors.user_may_cancel(user=user, order=order):
        raise OrderForbidden("Cancelling another customer's order needs the orders.change_order permission.")
    return Order.CancelCode.CUSTOMER if order.customer_id == user.pk else Order.CancelCode.STAFF


def _user(user_id: int) -> Any:
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise OrderForbidden(f"No user has id {user_id}.")
    return user


def _order_for_update(order_id: UUID) -> Order:
    try:
        return Order.objects.select_for_update().get(pk=order_id)
    except Order.DoesNotExist:
        raise InvalidOrder(f"No order has id {order_id}.") from None


def payment_token_forget(*, order_id: UUID) -> None:
    """Destroy the key the order's card token is sealed under (in its event and its draft): it is no longer needed.

    Once payments has answered (the saga learns it), or the draft was
    cancelled. Every event still decodes; the token reads as "".
    """
    personal.forget_subject(payment_subject(order_id))


def _payment_token(order: Order) -> str:
    """The draft's card token, opened (legacy rows kept it in the clear)."""
    if not order.payment_token.startswith("{"):
        return order.payment_token
    return personal.open_value(order.payment_token) or ""


def _publish(order: Order, event) -> None:
    publish(
        event,
        correlation_id=order.correlation_id,
        subjects=order_subjects(customer_id=order.customer_id, order_id=order.id),
    )


def _valid_lines(lines: Sequence[LineRequest | Mapping[str, Any]]) -> list[LineRequest]:
    try:
        requested = [line if isinstance(line, LineRequest) else LineRequest(**line) for line in lines]
    except TypeError:
        raise InvalidOrder.in_fields({"lines": ["Each line needs exactly a sku and a quantity."]}) from None
    if not 1 <= len(requested) <= MAX_LINES:
        count = f"An order has between 1 and {MAX_LINES} lines; this one has {len(requested)}."
        raise InvalidOrder.in_fields({"lines": [count]})
    errors = {}
    for index, r in enumerate(requested):
        if not isinstance(r.quantity, int) or r.quantity < 1:
            errors[f"lines.{index}.quantity"] = [f"The quantity of {r.sku} must be a whole number of at least 1."]
        elif r.quantity > MAX_QUANTITY:
            errors[f"lines.{index}.quantity"] = [f"The quantity of {r.sku} must be at most {MAX_QUANTITY}."]
    if errors:
        raise InvalidOrder.in_fields(errors)
    return requested


def _valid_address(address: ShippingAddress | Mapping[str, str]) -> ShippingAddress:
    if isinstance(address, ShippingAddress):
        return address
    try:
        return ShippingAddress.model_validate(dict(address))
    except ValidationError as exc:
        problems = [(".".join(map(str, e["loc"])), e["msg"]) for e in exc.errors()]
        errors: dict[str, list[str]] = {}
        for field, message in problems:
            errors.setdefault(f"shipping_address.{field}" if field else "shipping_address", []).append(message)
        summary = "; ".join(f"{field}: {message}" for field, message in problems)
        raise InvalidOrder(f"The shipping address is incomplete or invalid ({summary}).", errors=errors) from None


def _prices_for(requested: list[LineRequest]) -> dict[str, CataloguePrice]:
    """The price now of each line's SKU; each line whose SKU no product has, or an earlier line has, is refused."""
    prices = catalogue().prices(skus=[r.sku for r in requested])
    errors, seen = {}, set()
    for index, r in enumerate(requested):
        if r.sku not in prices:
            errors[f"lines.{index}.sku"] = [f"No product has SKU {r.sku!r}: choose one from the catalogue."]
        elif r.sku in seen:
            errors[f"lines.{index}.sku"] = [f"{r.sku} is on an earlier line: put the whole quantity on one line."]
        seen.add(r.sku)
    if errors:
        raise InvalidOrder.in_fields(errors)
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


@transaction.atomic
def orders_forget_customer(*, customer_id: int) -> int:
    """Erase what the customer's orders keep of them (email, address, a draft's card token); their lines and
    totals stay, as the books need them. Returns how many orders were erased; safe to repeat."""
    orders = Order.objects.filter(customer_id=customer_id)
    order_ids = list(orders.values_list("id", flat=True))
    erased = orders.update(customer_email="", shipping_address=ERASED_ADDRESS.model_dump(), payment_token="")
    personal.forget_subjects(payment_subject(order_id) for order_id in order_ids)
    IdempotencyKey.objects.filter(customer_id=customer_id).delete()  # their fingerprints hash the address
    return erased
