"""The payment gateway port.

A gateway takes an idempotency key with every call: the same key always gets
the same answer and never moves money twice, which is what makes it safe for
the outbox to retry a charge. The keys are derived from the order (see
``payments.services``), so a cancellation can find, and void, what an
attempt whose transaction rolled back did at the provider. Settings may name
an adapter in ``PAYMENTS_GATEWAY`` (a dotted path to a class); the default is
the sandbox provider of ``payments.sandbox``.

An adapter that moves no real money says so with a class attribute
``sandbox = True`` (a subclass of one inherits it): production refuses to start
with one unless ``ALLOW_SANDBOX_PROVIDERS`` declares a demo (config/checks.py),
and the shop shows its test tokens only then (:func:`gateway_is_sandbox`).
"""

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from outbox.events import Money

DEFAULT_GATEWAY = "payments.sandbox.SandboxGateway"


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


@dataclass(frozen=True)
class VoidReceipt:
    """The provider released the authorisation ``charge_reference``."""

    charge_reference: str
    reference: str


class PaymentGateway(Protocol):
    def authorise(self, *, token: str, amount: Money, idempotency_key: str) -> Authorisation: ...

    def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> RefundReceipt: ...

    def void(self, *, idempotency_key: str) -> VoidReceipt | None:
        """Release the authorisation made under this key, if one was; None when nothing is held."""
        ...


def gateway_class() -> type[PaymentGateway]:
    """The adapter class the settings name (``ImportError`` if they name none)."""
    return import_string(getattr(settings, "PAYMENTS_GATEWAY", DEFAULT_GATEWAY))


def gateway() -> PaymentGateway:
    return gateway_class()()


def gateway_is_sandbox() -> bool:
    """Whether payments go to a sandbox, whose test tokens the shop may then explain."""
    return getattr(gateway_class(), "sandbox", False) is True
