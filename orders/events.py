"""Events the orders context publishes: one order's life, from draft to shipped or cancelled."""

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from django_countries import countries
from pydantic import BaseModel, ConfigDict, Field, field_validator

from customers.events import customer_subject
from outbox.events import DomainEvent, Money, upcaster
from outbox.personal import Personal

CancelCode = Literal["customer", "staff", "payment_failed", "out_of_stock"]
COUNTRY_CODE_PATTERN = r"^[A-Za-z]{2}$"


def country_code(value: str) -> str:
    """``value`` as an ISO 3166-1 alpha-2 country code (upper case), or ValueError saying what is wrong with it.

    The one check of a country, for the address in the events, the order form and the API.
    """
    code = value.strip()
    if not re.fullmatch(COUNTRY_CODE_PATTERN, code):
        raise ValueError("Give the country as its ISO 3166-1 alpha-2 code, two letters like DE or FR.")
    if code.upper() not in countries:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code, like DE or FR.")
    return code.upper()


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
        return country_code(value)


# What an address reads as once its customer was forgotten (crypto-shredded: outbox.personal).
ERASED_ADDRESS = ShippingAddress.model_construct(name="", line1="", line2="", city="", postal_code="", country="")
# Personal data, sealed in the log under the customer's key (publish(..., subjects=order_subjects(...))).
Email = Annotated[str, Personal("customer")]
Address = Annotated[ShippingAddress, Personal("customer", erased=ERASED_ADDRESS)]
# The card token is sealed under a key of the order's payment, shredded once payments has answered.
CardToken = Annotated[str, Personal("payment")]


def payment_subject(order_id: UUID) -> str:
    return f"payment:{order_id}"


def order_subjects(*, customer_id: int, order_id: UUID) -> dict[str, str]:
    """Whose personal data an order's events hold, by kind: the customer's, and the payment's (its token)."""
    return {"customer": customer_subject(customer_id), "payment": payment_subject(order_id)}


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
    shipping_address: Address


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
    customer_email: Email = ""
    shipping_address: Annotated[ShippingAddress | None, Personal("customer", erased=ERASED_ADDRESS)] = None
    payment_token: CardToken = ""

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
    shipping_address: Address


class OrderCancelled(_OrderEvent):
    """Cancelled before shipment. ``refund_due``: orders knew a payment had been taken.

    Payments refunds whatever it actually took, whatever this flag says.
    """

    event_type: ClassVar[str] = "orders.OrderCancelled"

    code: CancelCode
    reason: str
    refund_due: bool
    total: Money
    customer_email: Email = ""


class OrderShipped(_OrderEvent):
    event_type: ClassVar[str] = "orders.OrderShipped"

    carrier: str
    tracking_number: str
    estimated_delivery: dt.date
    customer_email: Email = ""
