"""Events the customers context publishes."""

from typing import ClassVar
from uuid import UUID

from outbox.events import DomainEvent


def customer_subject(customer_id: int) -> str:
    """Whose key seals a customer's personal data in the log (``outbox.personal``): forgetting them destroys it."""
    return f"customer:{customer_id}"


class CustomerForgotten(DomainEvent):
    """A customer's personal data was erased at their request: every context erases what it keeps of them.

    Their key is destroyed already, so the log's sealed fields read as erased;
    ``order_ids`` lets contexts that know orders, not customers, find their rows.
    """

    event_type: ClassVar[str] = "customers.CustomerForgotten"
    aggregate_type: ClassVar[str] = "customers.Customer"
    aggregate_id_field: ClassVar[str] = "customer_id"

    customer_id: int
    order_ids: tuple[UUID, ...] = ()
