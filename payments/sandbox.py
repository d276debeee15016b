"""The sandbox payment provider (the default gateway), and a read API on its ledger.

It behaves like a real provider: what it did is committed in its own store
(the ``sandbox`` database, see config/routers.py) the moment it answers, so
it stays when the handler's transaction that asked for it rolls back, and a
retry with the same idempotency key is answered from there, from any process.

Tokens: ``tok_visa`` and ``tok_mastercard`` authorise; any token starting
``tok_decline`` is declined; ``tok_flaky`` fails with a transient error on
the first two calls for a key (counted in the store, whatever process makes
them), then authorises; ``tok_unavailable`` always fails with a transient
error; anything else is declined as unknown.

Counting at the provider (what the chaos suite asserts): :func:`charge_counts`,
:func:`charges` and :func:`calls`.
"""

import secrets
from collections import Counter
from collections.abc import Iterable

from django.db import router, transaction
from django.db.models import Count, QuerySet

from config.routers import provider_call
from outbox.events import Money

from .gateway import Authorisation, GatewayRefused, GatewayUnavailable, RefundReceipt, VoidReceipt
from .models import SandboxCall, SandboxCharge

Status = SandboxCharge.Status


class SandboxGateway:
    sandbox = True  # no real money moves: see payments.gateway
    APPROVED = frozenset({"tok_visa", "tok_mastercard"})
    FLAKY_FAILURES = 2

    @provider_call(GatewayUnavailable)
    def authorise(self, *, token: str, amount: Money, idempotency_key: str) -> Authorisation:
        with transaction.atomic(using=_store()):
            calls = _count_call(idempotency_key)  # locks the key's counter: its calls run one at a time
            charge = SandboxCharge.objects.filter(idempotency_key=idempotency_key).first()
            if charge is None and not self._times_out(token, calls):
                charge = _charge(token, amount, idempotency_key, declined=self._decline_reason(token))
        if charge is None:  # the call is counted (committed) all the same
            raise GatewayUnavailable(f"sandbox: the card network timed out (call {calls} for this key)")
        return _authorisation(charge)  # a retry gets the first answer: no second charge

    @provider_call(GatewayUnavailable)
    def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> RefundReceipt:
        with transaction.atomic(using=_store()):
            charge = SandboxCharge.objects.select_for_update().filter(reference=reference).first()
            if charge is None or charge.status in {Status.DECLINED, Status.VOIDED}:
                raise GatewayRefused(f"sandbox: no authorised charge {reference!r} to refund")
            if charge.status == Status.REFUNDED:
                return RefundReceipt(reference=charge.refund_reference)
            if amount.amount > charge.amount or amount.currency != charge.currency:
                raise GatewayRefused(f"sandbox: cannot refund {amount.amount} {amount.currency} of {reference}")
            charge.status, charge.refund_key = Status.REFUNDED, idempotency_key
            charge.refund_reference = f"re_{secrets.token_hex(12)}"
            charge.save(update_fields=["status", "refund_key", "refund_reference", "updated_at"])
            return RefundReceipt(reference=charge.refund_reference)

    @provider_call(GatewayUnavailable)
    def void(self, *, idempotency_key: str) -> VoidReceipt | None:
        with transaction.atomic(using=_store()):
            charge = SandboxCharge.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if charge is None or charge.status in {Status.DECLINED, Status.REFUNDED}:
                return None  # nothing is held under this key
            if charge.status == Status.AUTHORISED:
                charge.status, charge.void_reference = Status.VOIDED, f"vo_{secrets.token_hex(12)}"
                charge.save(update_fields=["status", "void_reference", "updated_at"])
            return VoidReceipt(charge_reference=charge.reference, reference=charge.void_reference)

    def _times_out(self, token: str, calls: int) -> bool:
        return token == "tok_unavailable" or (token == "tok_flaky" and calls <= self.FLAKY_FAILURES)

    def _decline_reason(self, token: str) -> str:
        if token in self.APPROVED | {"tok_flaky"}:
            return ""
        if token.startswith("tok_decline"):
            return "card declined"
        return f"unknown payment token ({_last_four(token)})"


def charges(*, idempotency_keys: Iterable[str] | None = None) -> QuerySet[SandboxCharge]:
    """The provider's charges (one per key at most), only those under ``idempotency_keys`` if given."""
    rows = SandboxCharge.objects.all()
    return rows if idempotency_keys is None else rows.filter(idempotency_key__in=list(idempotency_keys))


def charge_counts(*, idempotency_keys: Iterable[str] | None = None) -> Counter[str]:
    """The provider's charges by status (``authorised``, ``declined``, ``refunded``, ``voided``).

    A refund or a void is the fate of a charge, so ``refunded`` counts refunds
    and ``authorised`` the charges that still hold money.
    """
    by_status = charges(idempotency_keys=idempotency_keys).order_by().values("status").annotate(n=Count("id"))
    return Counter({row["status"]: row["n"] for row in by_status})


def calls(*, idempotency_key: str) -> int:
    """How many authorisation calls reached the provider under this key (replays included)."""
    return SandboxCall.objects.filter(idempotency_key=idempotency_key).values_list("calls", flat=True).first() or 0


def _store() -> str:
    return router.db_for_write(SandboxCharge)


def _count_call(idempotency_key: str) -> int:
    counter, created = SandboxCall.objects.select_for_update().get_or_create(
        idempotency_key=idempotency_key, defaults={"calls": 1}
    )
    if not created:
        counter.calls += 1
        counter.save(update_fields=["calls", "last_call_at"])
    return counter.calls


def _charge(token: str, amount: Money, idempotency_key: str, *, declined: str) -> SandboxCharge:
    return SandboxCharge.objects.create(
        idempotency_key=idempotency_key,
        reference=f"ch_{secrets.token_hex(12)}",
        card=_last_four(token),
        amount=amount.amount,
        currency=amount.currency,
        status=Status.DECLINED if declined else Status.AUTHORISED,
        decline_reason=declined,
    )


def _last_four(token: str) -> str:
    """All of a card token a provider's ledger shows, as real ones show a card's last four digits."""
    return f"…{token[-4:]}" if len(token) > 4 else "…"


def _authorisation(charge: SandboxCharge) -> Authorisation:
    if charge.status == Status.VOIDED:
        return Authorisation(approved=False, reference=charge.reference, decline_reason="authorisation voided")
    return Authorisation(
        approved=charge.status != Status.DECLINED, reference=charge.reference, decline_reason=charge.decline_reason
    )
