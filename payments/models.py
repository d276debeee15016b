"""The payments context: one payment per order, and the sandbox provider's own ledger."""

import uuid

from django.db import models


class InvalidPaymentTransition(Exception):
    """A payment was asked to move to a state it cannot reach from where it is."""


class Payment(models.Model):
    """What payments did about one order's money.

    A cancellation that arrives before the confirmation leaves a ``voided``
    payment behind, so the late confirmation charges nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        AUTHORISED = "authorised"
        DECLINED = "declined"
        FAILED = "failed"  # the gateway stayed unavailable
        REFUNDED = "refunded"
        VOIDED = "voided"  # cancelled before any charge

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_reference = models.CharField(max_length=100, blank=True, default="")
    refund_reference = models.CharField(max_length=100, blank=True, default="")
    idempotency_key = models.CharField(max_length=100, blank=True, default="")
    failure_reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for order {self.order_id} ({self.status})"

    def _move(self, to: str, *, allowed_from: set[str]) -> None:
        if self.status not in allowed_from:
            raise InvalidPaymentTransition(f"Payment {self.id} is {self.status}: it cannot become {to}.")
        self.status = to

    def authorise(self, *, reference: str) -> None:
        self._move(self.Status.AUTHORISED, allowed_from={self.Status.PENDING})
        self.provider_reference = reference

    def decline(self, *, reason: str, reference: str = "") -> None:
        self._move(self.Status.DECLINED, allowed_from={self.Status.PENDING})
        self.failure_reason, self.provider_reference = reason[:300], reference

    def give_up(self, *, reason: str) -> None:
        self._move(self.Status.FAILED, allowed_from={self.Status.PENDING})
        self.failure_reason = reason[:300]

    def refund(self, *, reference: str) -> None:
        self._move(self.Status.REFUNDED, allowed_from={self.Status.AUTHORISED})
        self.refund_reference = reference


class SandboxCharge(models.Model):
    """The sandbox payment provider's ledger: one row per idempotency key.

    Not part of the payments domain: it stands in for the provider's own
    database, so that a retried charge with the same key is answered from
    here instead of charging again, from any worker process.
    """

    class Status(models.TextChoices):
        AUTHORISED = "authorised"
        DECLINED = "declined"
        REFUNDED = "refunded"

    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=100, unique=True)
    token = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices)
    decline_reason = models.CharField(max_length=300, blank=True, default="")
    refund_key = models.CharField(max_length=100, blank=True, default="")
    refund_reference = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.currency} ({self.status})"
