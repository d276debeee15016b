"""Events the orders context publishes: one order's life, from draft to shipped or cancelled."""

import datetime as dt
from decimal import Decimal
from typing import ClassVar, Literal
from uuid import UUID

from django_countries import countries
from pydantic import BaseModel, ConfigDict, Field, field_validator

from outbox.events import DomainEvent, Money, upcaster

CancelCode = Literal["customer", "staff", "payment_failed", "out_of_stock"]


class ShippingAddress(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    line1: str = Field(min_length=1, max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")

    @field_validator("country")
    @classmethod
    def _alpha_2(cls, value: str) -> str:
        if value.upper() not in countries:
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code, like DE or FR")
        return value.upper()


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str
    name: str
    quantity: int = Field(ge=1)
    unit_price: Money


class _OrderEvent(DomainEvent):
    aggregate_type: ClassVar[str] = "orders.Order"
    aggregate_id_field: ClassVar[str] = "order_id"

    order_id: UUID


class OrderPlaced(_OrderEvent):
    """A customer created a draft order with its lines."""

    event_type: ClassVar[str] = "orders.OrderPlaced"

    customer_id: int
    lines: tuple[OrderLine, ...]
    total: Money
    shipping_address: ShippingAddress


class OrderConfirmed(_OrderEvent):
    """The customer confirmed the order: pay for it, reserve it, tell the customer.

    v2. v1 carried only ``order_total: float`` and ``currency``; the upcaster
    below maps it, leaving what v1 never knew (customer, lines, address,
    token) empty.
    """

    event_type: ClassVar[str] = "orders.OrderConfirmed"
    version: ClassVar[int] = 2

    total: Money
    lines: tuple[OrderLine, ...] = ()
    customer_id: int | None = None
    customer_email: str = ""
    shipping_address: ShippingAddress | None = None
    payment_token: str = ""

    @property
    def currency(self) -> str:
        return self.total.currency


@upcaster("orders.OrderConfirmed", from_version=1)
def _order_confirmed_v1_to_v2(payload: dict) -> dict:
    """``order_total`` was a float: go through its shortest repr, never binary float maths."""
    return {
        "order_id": payload["order_id"],
        "total": {"amount": str(Decimal(repr(float(payload["order_total"])))), "currency": payload["currency"]},
    }


class OrderReadyToShip(_OrderEvent):
    """Payment and stock are both secured: shipping may book a carrier."""

    event_type: ClassVar[str] = "orders.OrderReadyToShip"

    lines: tuple[OrderLine, ...]
    shipping_address: ShippingAddress


class OrderCancelled(_OrderEvent):
    """Cancelled before shipment. ``refund_due``: orders knew a payment had been taken.

    Payments refunds whatever it actually took, whatever this flag says.
    """

    event_type: ClassVar[str] = "orders.OrderCancelled"

    code: CancelCode
    reason: str
    refund_due: bool
    total: Money
    customer_email: str = ""


class OrderShipped(_OrderEvent):
    event_type: ClassVar[str] = "orders.OrderShipped"

    carrier: str
    tracking_number: str
    estimated_delivery: dt.date
    customer_email: str = ""
