"""The carrier port, and the sandbox carrier used by default.

Settings may name another adapter in ``SHIPPING_CARRIER`` (a dotted path to
a class). Bookings carry an idempotency key: booking the same key twice
returns the first booking.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

DEFAULT_CARRIER = "shipping.carrier.SandboxCarrier"


@dataclass(frozen=True)
class Booking:
    carrier: str
    tracking_number: str
    estimated_delivery: dt.date


class Carrier(Protocol):
    def book(self, *, address: dict, parcels: int, idempotency_key: str) -> Booking: ...

    def cancel(self, *, tracking_number: str) -> None: ...


def carrier() -> Carrier:
    return import_string(getattr(settings, "SHIPPING_CARRIER", DEFAULT_CARRIER))()


class SandboxCarrier:
    """Books instantly: a tracking number derived from the key, delivery in three working days."""

    NAME = "Sandbox Parcel"

    def book(self, *, address: dict, parcels: int, idempotency_key: str) -> Booking:
        digits = int(hashlib.sha256(idempotency_key.encode()).hexdigest(), 16) % 10**12
        return Booking(
            carrier=self.NAME,
            tracking_number=f"SBX{digits:012d}",
            estimated_delivery=_working_days_from(timezone.now().date(), 3),
        )

    def cancel(self, *, tracking_number: str) -> None:
        return None


def _working_days_from(start: dt.date, days: int) -> dt.date:
    day = start
    while days:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day
