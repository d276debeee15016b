"""The payment gateway port, and the sandbox adapter used by default.

A gateway takes an idempotency key with every call: the same key always gets
the same answer and never moves money twice, which is what makes it safe for
the outbox to retry a charge. Settings may name another adapter in
``PAYMENTS_GATEWAY`` (a dotted path to a class).

Sandbox tokens: ``tok_visa`` and ``tok_mastercard`` authorise; any token
starting ``tok_decline`` is declined; ``tok_flaky`` fails with a transient
error on its first two calls for a key, then authorises; ``tok_unavailable``
always fails with a transient error; anything else is declined as unknown.
"""

import secrets
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from outbox.events import Money

from .models import SandboxCharge

DEFAULT_GATEWAY = "payments.gateway.SandboxGateway"


class GatewayUnavailable(Exception):
    """A transient failure: try again later with the same idempotency key."""


class GatewayRefused(Exception):
    """The provider refused a request that will never succeed as it is (not a decline)."""


@dataclass(frozen=True)
class Authorisation:
    approved: bool
    reference: str
    decline_reason: str = ""


@dataclass(frozen=True)
class RefundReceipt:
    reference: str


class PaymentGateway(Protocol):
    def authorise(self, *, token: str, amount: Money, idempotency_key: str) -> Authorisation: ...

    def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> RefundReceipt: ...


def gateway() -> PaymentGateway:
    return import_string(getattr(settings, "PAYMENTS_GATEWAY", DEFAULT_GATEWAY))()


class SandboxGateway:
    """Behaves like a real provider, with its ledger in :class:`SandboxCharge`.

    Calls per key are counted in the cache, which no database rollback
    undoes, so ``tok_flaky`` recovers on its third call even though each
    failed attempt rolled back the handler's transaction.
    """

    APPROVED = frozenset({"tok_visa", "tok_mastercard"})
    FLAKY_FAILURES = 2

    def authorise(self, *, token: str, amount: Money, idempotency_key: str) -> Authorisation:
        known = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
        if known is not None:
            return _authorisation(known)  # a retry: same answer, no second charge
        calls = _count_call(idempotency_key)
        if token == "tok_unavailable" or (token == "tok_flaky" and calls <= self.FLAKY_FAILURES):
            raise GatewayUnavailable(f"sandbox: the card network timed out (call {calls} for this key)")
        declined = _decline_reason(token, approved=self.APPROVED | {"tok_flaky"})
        charge = SandboxCharge.objects.create(
            idempotency_key=idempotency_key,
            reference=f"ch_{secrets.token_hex(12)}",
            token=token,
            amount=amount.amount,
            currency=amount.currency,
            status=SandboxCharge.Status.DECLINED if declined else SandboxCharge.Status.AUTHORISED,
            decline_reason=declined,
        )
        return _authorisation(charge)

    def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> RefundReceipt:
        charge = SandboxCharge.objects.select_for_update().filter(reference=reference).first()
        if charge is None or charge.status == SandboxCharge.Status.DECLINED:
            raise GatewayRefused(f"sandbox: no authorised charge {reference!r} to refund")
        if charge.status == SandboxCharge.Status.REFUNDED:
            return RefundReceipt(reference=charge.refund_reference)
        if amount.amount > charge.amount or amount.currency != charge.currency:
            raise GatewayRefused(f"sandbox: cannot refund {amount.amount} {amount.currency} of {reference}")
        charge.status, charge.refund_key = SandboxCharge.Status.REFUNDED, idempotency_key
        charge.refund_reference = f"re_{secrets.token_hex(12)}"
        charge.save(update_fields=["status", "refund_key", "refund_reference"])
        return RefundReceipt(reference=charge.refund_reference)

    @staticmethod
    def calls(idempotency_key: str) -> int:
        """How many calls reached the sandbox for this key (replays included)."""
        return cache.get(_calls_key(idempotency_key), 0)


def _count_call(idempotency_key: str) -> int:
    key = _calls_key(idempotency_key)
    cache.add(key, 0, timeout=24 * 3600)
    return cache.incr(key)


def _calls_key(idempotency_key: str) -> str:
    return f"payments:sandbox:calls:{idempotency_key}"


def _decline_reason(token: str, *, approved: frozenset[str]) -> str:
    if token in approved:
        return ""
    if token.startswith("tok_decline"):
        return "card declined"
    return f"unknown payment token {token[:40]!r}"


def _authorisation(charge: SandboxCharge) -> Authorisation:
    return Authorisation(
        approved=charge.status != SandboxCharge.Status.DECLINED,
        reference=charge.reference,
        decline_reason=charge.decline_reason,
    )
