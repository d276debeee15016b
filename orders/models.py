"""The orders context: the order aggregate (with its lines) and the order saga's state."""

import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone


class OrderError(Exception):
    """A request about an order that the business rules refuse; the message says why."""


class InvalidOrder(OrderError):
    """The order as asked for cannot be placed (no lines, unknown SKU, bad address...), or there is no such order.

    ``errors``: when the fault is in fields of the request, the messages for
    each, keyed by the field's path (``lines.1.sku``, ``shipping_address.city``,
    ``payment_token``); empty when it is in the request as a whole.
    """

    def __init__(self, message: str, *, errors: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = {path: list(messages) for path, messages in (errors or {}).items()}

    @classmethod
    def in_fields(cls, errors: Mapping[str, Sequence[str]]) -> "InvalidOrder":
        """The error for these fields' faults, its message all of theirs."""
        return cls(" ".join(message for messages in errors.values() for message in messages), errors=errors)


class OrderForbidden(OrderError):
    """The person asking may not do this to the order: it is another customer's."""


class InvalidOrderTransition(OrderError):
    """The order is in a state from which the asked-for move is not allowed."""


class InvalidIdempotencyKey(OrderError):
    """An idempotency key that cannot be one: empty, too long, or not printable ASCII."""


class IdempotencyKeyReused(OrderError):
    """The customer's idempotency key already placed an order, for a different request."""

    def __init__(self, message: str, *, order_id: uuid.UUID) -> None:
        super().__init__(message)
        self.order_id = order_id


class Order(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        CONFIRMED = "confirmed"
        READY_TO_SHIP = "ready_to_ship"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    class CancelCode(models.TextChoices):
        CUSTOMER = "customer"
        STAFF = "staff"
        PAYMENT_FAILED = "payment_failed"
        OUT_OF_STOCK = "out_of_stock"

    FINAL = (Status.SHIPPED, Status.CANCELLED)
    CONFIRMABLE = (Status.DRAFT,)
    CANCELLABLE = (Status.DRAFT, Status.CONFIRMED, Status.READY_TO_SHIP)  # until it has shipped
    SYSTEM_CANCEL_CODES = (CancelCode.PAYMENT_FAILED, CancelCode.OUT_OF_STOCK)  # the saga's: no person cancelled

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    customer_email = models.EmailField(blank=True, default="")  # as it was when the order was placed
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3)
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)
    shipping_address = models.JSONField()
    # A draft's card token, sealed (outbox.personal.seal_value) until the confirmation carries it: never in the clear.
    payment_token = models.TextField(blank=True, default="")
    # Every event of this order's life carries it: the order's whole workflow is one correlation.
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False)
    cancel_code = models.CharField(max_length=20, choices=CancelCode.choices, blank=True, default="")
    cancel_reason = models.CharField(max_length=500, blank=True, default="")
    carrier = models.CharField(max_length=100, blank=True, default="")
    tracking_number = models.CharField(max_length=100, blank=True, default="")
    estimated_delivery = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="orders_by_customer")]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def is_confirmable(self) -> bool:
        return self.status in self.CONFIRMABLE

    @property
    def is_cancellable(self) -> bool:
        return self.status in self.CANCELLABLE

    @property
    def was_confirmed(self) -> bool:
        """Confirmed once, whatever its status now: it may since have shipped or been cancelled."""
        return self.confirmed_at is not None

    def _move(self, to: str, *, allowed_from: Collection[str], doing: str, rule: str = "") -> None:
        if self.status not in allowed_from:
            raise InvalidOrderTransition(f"Order {self.id} is {self.status}: it cannot be {doing}. {rule}".strip())
        self.status = to

    def confirm(self) -> None:
        self._move(
            self.Status.CONFIRMED,
            allowed_from=self.CONFIRMABLE,
            doing="confirmed",
            rule="Only a draft order can be confirmed.",
        )
        self.confirmed_at = timezone.now()

    def mark_ready_to_ship(self) -> None:
        self._move(self.Status.READY_TO_SHIP, allowed_from={self.Status.CONFIRMED}, doing="made ready to ship")

    def mark_shipped(self, *, carrier: str, tracking_number: str, estimated_delivery: dt.date) -> None:
        self._move(self.Status.SHIPPED, allowed_from={self.Status.READY_TO_SHIP}, doing="shipped")
        self.carrier, self.tracking_number = carrier, tracking_number
        self.estimated_delivery = estimated_delivery
        self.shipped_at = timezone.now()

    def cancel(self, *, code: str, reason: str) -> None:
        """An order may be cancelled until shipment; a shipped or cancelled order stays as it is."""
        self._move(
            self.Status.CANCELLED,
            allowed_from=self.CANCELLABLE,
            doing="cancelled",
            rule="An order can be cancelled only until it has shipped.",
        )
        self.cancel_code, self.cancel_reason = code, reason[:500]
        self.cancelled_at = timezone.now()


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)  # captured when the order was placed

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["order", "sku"], name="orders_line_once_per_sku")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class IdempotencyKey(models.Model):
    """A customer's ``Idempotency-Key``: the order it placed, and a fingerprint of what was asked for.

    One per (customer, key): the unique constraint is what makes two requests
    with the same key, however concurrent, place one order (see
    :func:`orders.services.order_place_once`).
    """

    MAX_LENGTH = 255

    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=MAX_LENGTH)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the placement's arguments, as hex
    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="idempotency_key")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "key"], name="orders_idempotency_key_per_customer")]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of customer {self.customer_id}: order {self.order_id}"


class OrderSaga(models.Model):
    """The order saga's persisted state: what it has learnt, and what it decided.

    Facts only ever move forward (pending -> secured or failed); the outcome is
    decided once. So the same facts, learnt in any order and any number of
    times, lead to the same decision (see :mod:`orders.saga`).
    """

    class Payment(models.TextChoices):
        PENDING = "pending"
        SECURED = "secured"
        FAILED = "failed"

    class Stock(models.TextChoices):
        PENDING = "pending"
        SECURED = "secured"
        SHORT = "short"

    class Outcome(models.TextChoices):
        PENDING = "pending"
        READY_TO_SHIP = "ready_to_ship"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    order = models.OneToOneField(Order, primary_key=True, on_delete=models.CASCADE, related_name="saga")
    payment = models.CharField(max_length=10, choices=Payment.choices, default=Payment.PENDING)
    payment_failure = models.CharField(max_length=300, blank=True, default="")
    stock = models.CharField(max_length=10, choices=Stock.choices, default=Stock.PENDING)
    short_skus = models.JSONField(default=list, blank=True)
    shipment = models.JSONField(null=True, blank=True)  # carrier, tracking_number, estimated_delivery
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.PENDING)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"saga of order {self.order_id}: {self.outcome}"

    @property
    def payment_secured(self) -> bool:
        return self.payment == self.Payment.SECURED

    @property
    def stock_secured(self) -> bool:
        return self.stock == self.Stock.SECURED

    def learn_payment_secured(self) -> None:
        if self.payment == self.Payment.PENDING:
            self.payment = self.Payment.SECURED

    def learn_payment_failed(self, reason: str) -> None:
        if self.payment == self.Payment.PENDING:
            self.payment, self.payment_failure = self.Payment.FAILED, reason[:300]

    def learn_stock_secured(self) -> None:
        if self.stock == self.Stock.PENDING:
            self.stock = self.Stock.SECURED

    def learn_stock_short(self, skus: list[str]) -> None:
        if self.stock == self.Stock.PENDING:
            self.stock, self.short_skus = self.Stock.SHORT, sorted(skus)

    def learn_shipment(self, *, carrier: str, tracking_number: str, estimated_delivery: dt.date) -> None:
        if self.shipment is None:
            self.shipment = {
                "carrier": carrier,
                "tracking_number": tracking_number,
                "estimated_delivery": estimated_delivery.isoformat(),
            }
