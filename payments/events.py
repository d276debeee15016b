"""Events the payments context publishes."""

from typing import ClassVar
from uuid import UUID

from outbox.events import DomainEvent, Money


class _PaymentEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "payments.Payment"
    aggregate_id_field: ClassVar[str] = "payment_id"

    payment_id: UUID
    order_id: UUID


class PaymentProcessed(_PaymentEvent):
    """The order total is authorised."""

    event_type: ClassVar[str] = "payments.PaymentProcessed"

    amount: Money
    provider_reference: str


class PaymentFailed(_PaymentEvent):
    """Declined, or the gateway stayed unavailable until we gave up."""

    event_type: ClassVar[str] = "payments.PaymentFailed"

    reason: str


class PaymentRefunded(_PaymentEvent):
    """Money taken for a cancelled order went back to the customer."""

    event_type: ClassVar[str] = "payments.PaymentRefunded"

    amount: Money
    provider_reference: str
    refund_reference: str
