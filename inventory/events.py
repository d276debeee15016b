"""Events the inventory context publishes.

Two kinds:

- Order-level facts (``InventoryReserved``, ``InventoryReservationFailed``,
  ``InventoryReleased``), aggregate ``inventory.Reservation``: what other
  contexts subscribe to.
- The stock ledger: one stream per SKU (aggregate ``inventory.StockItem``,
  aggregate id the SKU), one event per change of that SKU's stock. A stock
  item's state is the fold of its stream (:mod:`inventory.stock`). Nobody
  needs to subscribe to these: they are the record itself.
"""

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


class StockEvent(DomainEvent):
    """A change to one SKU's stock: an entry in that SKU's stream."""

    aggregate_type: ClassVar[str] = "inventory.StockItem"
    aggregate_id_field: ClassVar[str] = "sku"

    sku: str
    quantity: int = Field(ge=1)


class StockReceived(StockEvent):
    """Units arrived at the warehouse (a delivery, or the opening stock of a new product): on hand goes up."""

    event_type: ClassVar[str] = "inventory.StockReceived"


class StockReserved(StockEvent):
    """Units on hand were promised to an order: reserved goes up."""

    event_type: ClassVar[str] = "inventory.StockReserved"

    order_id: UUID


class StockReservationReleased(StockEvent):
    """An order's promise was withdrawn (it was cancelled): reserved goes down, the units are available again."""

    event_type: ClassVar[str] = "inventory.StockReservationReleased"

    order_id: UUID


class StockShipped(StockEvent):
    """Reserved units left the warehouse with their order: on hand and reserved both go down."""

    event_type: ClassVar[str] = "inventory.StockShipped"

    order_id: UUID
