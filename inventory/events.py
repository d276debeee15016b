"""Events the inventory context publishes."""

from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from outbox.events import DomainEvent


class StockLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    quantity: int = Field(ge=1)


class Shortage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    requested: int
    available: int


class _ReservationEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "inventory.Reservation"
    aggregate_id_field: ClassVar[str] = "reservation_id"

    reservation_id: UUID
    order_id: UUID


class InventoryReserved(_ReservationEvent):
    """Every line of the order is reserved."""

    event_type: ClassVar[str] = "inventory.InventoryReserved"

    lines: tuple[StockLine, ...]


class InventoryReservationFailed(_ReservationEvent):
    """Some line was short, so nothing was reserved."""

    event_type: ClassVar[str] = "inventory.InventoryReservationFailed"

    shortages: tuple[Shortage, ...]


class InventoryReleased(_ReservationEvent):
    """A reservation went back to stock (the order was cancelled)."""

    event_type: ClassVar[str] = "inventory.InventoryReleased"

    lines: tuple[StockLine, ...]
