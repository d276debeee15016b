"""The carrier port.

Settings may name an adapter in ``SHIPPING_CARRIER`` (a dotted path to a
class); the default is the sandbox carrier of ``shipping.sandbox``. Bookings
carry an idempotency key derived from the order (see ``shipping.services``):
booking the same key again returns the first booking, and a cancellation
finds, by that key, a booking made by an attempt whose transaction rolled back.

An adapter that ships nothing says so with a class attribute ``sandbox = True``:
production refuses to start with one unless ``ALLOW_SANDBOX_PROVIDERS``
declares a demo (config/checks.py).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

DEFAULT_CARRIER = "shipping.sandbox.SandboxCarrier"


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str
    estimated_delivery: dt.date
    cancelled: bool = False


class Carrier(Protocol):
    def book(self, *, address: dict, parcels: int, idempotency_key: str) -> Booking: ...

    def cancel(self, *, idempotency_key: str) -> Booking | None:
        """Call off the booking made under this key, if one was (again: the same answer); None if none was."""
        ...

    def erase_address(self, *, idempotency_key: str) -> None:
        """Ask the carrier to erase the address of the booking made under this key, if any (the customer was
        forgotten); its parcel count, dates and tracking number stay."""
        ...


def carrier_class() -> type[Carrier]:
    """The adapter class the settings name (``ImportError`` if they name none)."""
    return import_string(getattr(settings, "SHIPPING_CARRIER", DEFAULT_CARRIER))


def carrier() -> Carrier:
    return carrier_class()()
