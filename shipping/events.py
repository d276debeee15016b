"""Events the shipping context publishes."""

import datetime as dt
from typing import ClassVar
from uuid import UUID

from outbox.events import DomainEvent


class ShippingArranged(DomainEvent):
    """A carrier is booked for the order and its tracking number is known."""

    event_type: ClassVar[str] = "shipping.ShippingArranged"
    aggregate_type: ClassVar[str] = "shipping.Shipment"
    aggregate_id_field: ClassVar[str] = "shipment_id"

    shipment_id: UUID
    order_id: UUID
    carrier: str
    tracking_number: str
    estimated_delivery: dt.date
