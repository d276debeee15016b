"""The inventory context: the catalogue (SKU, name, price) and stock per SKU.

Inventory owns the catalogue. Other contexts read prices only through the
published read API in :mod:`inventory.selectors`, never these models.

Stock is event-sourced. Each SKU has a stream of events in the outbox event
log (aggregate ``inventory.StockItem``, id the SKU), and its state is the fold
of that stream (:mod:`inventory.stock`). :class:`StockItem` is the projection
of the fold, kept in the transaction that appends each event, and
:class:`StockSnapshot` holds the fold every ``INVENTORY_SNAPSHOT_EVERY``
events so that a past state is folded from a nearby snapshot rather than from
the first event. Both can be rebuilt from the log
(``python manage.py inventory_rebuild``).
"""

import uuid

from django.db import models
from django.db.models import F, Q

from .stock import StockState


class Product(models.Model):
    sku = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")

    class Meta:
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="inventory_price_not_negative")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class StockItem(models.Model):
    """Units of one SKU in the warehouse; ``reserved`` of them are promised to orders.

    The projection of the SKU's stream: the fold of its first ``version``
    events, the last of which is outbox event ``position``. Only
    :mod:`inventory.services` writes it, in the transaction that appends the
    event. The database refuses negative stock and over-reservation, whatever
    the code does.
    """

    product = models.OneToOneField(Product, on_delete=models.PROTECT, related_name="stock")
    sku = models.CharField(max_length=40, unique=True)
    on_hand = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=0, help_text="Events in the SKU's stream folded into this row.")
    position = models.BigIntegerField(default=0, help_text="The outbox event id of the last of them (0: none).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        # Receiving writes stock (an event in the SKU's stream): staff who may only look at stock may not.
        permissions = [("receive_stock", "Can receive stock (add units to a SKU)")]
        constraints = [
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="inventory_on_hand_not_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="inventory_reserved_not_negative"),
            models.CheckConstraint(condition=Q(reserved__lte=F("on_hand")), name="inventory_reserved_within_on_hand"),
        ]

    def __str__(self) -> str:
        return f"{self.sku}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def state(self) -> StockState:
        return StockState(on_hand=self.on_hand, reserved=self.reserved, version=self.version)

    def project(self, state: StockState, *, position: int) -> None:
        """Show ``state``: the fold of the stream up to and including outbox event ``position``."""
        self.on_hand, self.reserved, self.version, self.position = (
            state.on_hand,
            state.reserved,
            state.version,
            position,
        )


class StockSnapshot(models.Model):
    """The fold of one SKU's stream up to and including outbox event ``position``.

    A cache of the log, written every ``INVENTORY_SNAPSHOT_EVERY`` events of
    a stream in the transaction that appends the event: a past state is the
    latest snapshot at or before it plus at most that many events.
    ``inventory_rebuild`` recreates them from the log.
    """

    sku = models.CharField(max_length=40)
    position = models.BigIntegerField(help_text="The outbox event id of the last event it covers.")
    version = models.PositiveIntegerField(help_text="How many events of the stream it covers.")
    occurred_at = models.DateTimeField(help_text="When that last event occurred.")
    on_hand = models.PositiveIntegerField()
    reserved = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sku", "position"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "position"], name="inventory_snapshot_once_per_position"),
        ]
        indexes = [models.Index(fields=["sku", "occurred_at", "position"], name="inventory_snapshot_time")]

    def __str__(self) -> str:
        return f"{self.sku} at event #{self.position}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def state(self) -> StockState:
        return StockState(on_hand=self.on_hand, reserved=self.reserved, version=self.version)


class InvalidReservationTransition(Exception):
    """A reservation was asked to move to a state it cannot reach from where it is."""


class Reservation(models.Model):
    """Stock held for one order: all of its lines, or (when short) none of them.

    One per order. A cancellation that arrives before the confirmation leaves
    a ``cancelled`` reservation behind, so the late confirmation reserves nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RESERVED = "reserved"
        FAILED = "failed"
        RELEASED = "released"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    shortages = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reservation for order {self.order_id} ({self.status})"

    def _move(self, to: str, *, allowed_from: set[str]) -> None:
        if self.status not in allowed_from:
            raise InvalidReservationTransition(f"Reservation {self.id} is {self.status}: it cannot become {to}.")
        self.status = to

    def mark_reserved(self) -> None:
        self._move(self.Status.RESERVED, allowed_from={self.Status.PENDING})

    def mark_failed(self, shortages: list[dict]) -> None:
        self._move(self.Status.FAILED, allowed_from={self.Status.PENDING})
        self.shortages = shortages

    def mark_released(self) -> None:
        self._move(self.Status.RELEASED, allowed_from={self.Status.RESERVED})

    def mark_shipped(self) -> None:
        self._move(self.Status.SHIPPED, allowed_from={self.Status.RESERVED})


class ReservationLine(models.Model):
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=40)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["sku"]
        constraints = [models.UniqueConstraint(fields=["reservation", "sku"], name="inventory_reservation_line_once")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"
