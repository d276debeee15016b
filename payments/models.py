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
    # The provider's release of an authorisation that an attempt of ours made and then rolled back.
    void_reference = models.CharField(max_length=100, blank=True, default="")
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

    def void(self, *, charge_reference: str = "", void_reference: str = "") -> None:
        """Nothing of ours is charged: none may be from now on, and a hold the provider released is noted.

        A payment that failed stays failed (the provider's hold, if a timed-out call left one, is released).
        """
        if self.status != self.Status.FAILED:
            self._move(self.Status.VOIDED, allowed_from={self.Status.PENDING, self.Status.VOIDED})
        if void_reference:
            self.provider_reference, self.void_reference = charge_reference, void_reference


class SandboxCharge(models.Model):
    """The sandbox payment provider's ledger: one row per authorisation idempotency key.

    Not part of the payments domain: it stands in for the provider's own
    database and lives in its store (the ``sandbox`` database, see
    config/routers.py), written through a connection of its own, so a charge
    stays when the transaction of the handler that asked for it rolls back,
    and a retry with the same key is answered from here instead of charging
    again, from any worker process.
    """

    class Status(models.TextChoices):
        AUTHORISED = "authorised"
        DECLINED = "declined"
        REFUNDED = "refunded"
        VOIDED = "voided"  # the authorisation was released before any refund was needed

    idempotency_key = models.CharField(max_length=100, unique=True)
    reference = models.CharField(max_length=100, unique=True)
    card = models.CharField(max_length=10, blank=True, default="")  # the token's last four characters, never it
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices)
    decline_reason = models.CharField(max_length=300, blank=True, default="")
    refund_key = models.CharField(max_length=100, blank=True, default="")
    refund_reference = models.CharField(max_length=100, blank=True, default="")
    void_reference = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.currency} ({self.status})"


class SandboxCall(models.Model):
    """How many authorisation calls reached the sandbox provider under one idempotency key.

    Kept in the provider's store, so the count survives our rollbacks and is
    shared by every process: ``tok_flaky`` fails the first two calls for a
    key whoever makes them.
    """

    idempotency_key = models.CharField(max_length=100, unique=True)
    calls = models.PositiveIntegerField(default=0)
    last_call_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.calls} calls for {self.idempotency_key}"
