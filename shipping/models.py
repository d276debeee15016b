"""The shipping context: one shipment per order."""

import uuid

from django.db import models


class InvalidShipmentTransition(Exception):
    """A shipment was asked to move to a state it cannot reach from where it is."""


class Shipment(models.Model):
    """The carrier booking of one order.

    A cancellation that arrives before the booking leaves a ``cancelled``
    shipment behind, so a late "ready to ship" books nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        BOOKED = "booked"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    address = models.JSONField(null=True, blank=True)
    carrier = models.CharField(max_length=100, blank=True, default="")
    tracking_number = models.CharField(max_length=100, blank=True, default="")
    estimated_delivery = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"shipment of order {self.order_id} ({self.status})"

    def book(self, *, carrier: str, tracking_number: str, estimated_delivery) -> None:
        if self.status != self.Status.PENDING:
            raise InvalidShipmentTransition(f"Shipment {self.id} is {self.status}: it cannot be booked.")
        self.status = self.Status.BOOKED
        self.carrier, self.tracking_number, self.estimated_delivery = carrier, tracking_number, estimated_delivery

    def cancel(self) -> None:
        if self.status == self.Status.CANCELLED:
            raise InvalidShipmentTransition(f"Shipment {self.id} is cancelled already.")
        self.status = self.Status.CANCELLED

    def called_off_at_carrier(self, *, carrier: str, tracking_number: str) -> None:
        """The carrier cancelled a booking under our key: note which, booked by us or by an attempt that rolled back."""
        if self.status != self.Status.CANCELLED:
            self.cancel()
        self.carrier, self.tracking_number = carrier, tracking_number


class SandboxBooking(models.Model):
    """The sandbox carrier's own record of a booking: one per idempotency key.

    Not part of the shipping domain: it stands in for the carrier's database
    and lives in its store (the ``sandbox`` database, see config/routers.py),
    written through a connection of its own, so a booking stays when the
    handler's transaction that asked for it rolls back, and a retry or a
    cancellation under the same key finds it.
    """

    class Status(models.TextChoices):
        BOOKED = "booked"
        CANCELLED = "cancelled"

    idempotency_key = models.CharField(max_length=100, unique=True)
    tracking_number = models.CharField(max_length=100, unique=True)
    carrier = models.CharField(max_length=100)
    estimated_delivery = models.DateField()
    parcels = models.PositiveIntegerField()
    address = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOOKED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.tracking_number} ({self.status})"
