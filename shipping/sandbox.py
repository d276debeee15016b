"""The sandbox carrier (the default), and a read API on its bookings.

It behaves like a real carrier: each booking is committed in its own store
(the ``sandbox`` database, see config/routers.py) the moment it answers, so
it stays when the handler's transaction that asked for it rolls back; a
retry with the same idempotency key gets the same booking, and a
cancellation under that key calls it off. It books instantly: a tracking
number derived from the key, delivery in three working days.

Counting at the carrier (what the chaos suite asserts): :func:`booking_counts`
and :func:`bookings`.
"""

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable

from django.db import router, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone

from config.routers import provider_call

from .carrier import Booking
from .models import SandboxBooking

Status = SandboxBooking.Status


class SandboxCarrier:
    sandbox = True  # nothing is really shipped: see shipping.carrier
    NAME = "Sandbox Parcel"

    @provider_call()
    def book(self, *, address: dict, parcels: int, idempotency_key: str) -> Booking:
        with transaction.atomic(using=_store()):
            booking, _ = SandboxBooking.objects.get_or_create(
                idempotency_key=idempotency_key,
                defaults={
                    "tracking_number": _tracking_number(idempotency_key),
                    "carrier": self.NAME,
                    "estimated_delivery": _working_days_from(timezone.now().date(), 3),
                    "parcels": parcels,
                    "address": address,
                },
            )
        return _booking(booking)  # a retry gets the first booking: nothing is booked twice

    @provider_call()
    def cancel(self, *, idempotency_key: str) -> Booking | None:
        with transaction.atomic(using=_store()):
            booking = SandboxBooking.objects.select_for_update().filter(idempotency_key=idempotency_key).first()
            if booking is None:
                return None
            if booking.status == Status.BOOKED:
                booking.status = Status.CANCELLED
                booking.save(update_fields=["status", "updated_at"])
        return _booking(booking)

    @provider_call()
    def erase_address(self, *, idempotency_key: str) -> None:
        SandboxBooking.objects.using(_store()).filter(idempotency_key=idempotency_key).update(address={})


def bookings(*, idempotency_keys: Iterable[str] | None = None) -> QuerySet[SandboxBooking]:
    """The carrier's bookings (one per key at most), only those under ``idempotency_keys`` if given."""
    rows = SandboxBooking.objects.all()
    return rows if idempotency_keys is None else rows.filter(idempotency_key__in=list(idempotency_keys))


def booking_counts(*, idempotency_keys: Iterable[str] | None = None) -> Counter[str]:
    """The carrier's bookings by status (``booked``, ``cancelled``)."""
    by_status = bookings(idempotency_keys=idempotency_keys).order_by().values("status").annotate(n=Count("id"))
    return Counter({row["status"]: row["n"] for row in by_status})


def _store() -> str:
    return router.db_for_write(SandboxBooking)


def _tracking_number(idempotency_key: str) -> str:
    digits = int(hashlib.sha256(idempotency_key.encode()).hexdigest(), 16) % 10**12
    return f"SBX{digits:012d}"


def _booking(booking: SandboxBooking) -> Booking:
    return Booking(
        carrier=booking.carrier,
        tracking_number=booking.tracking_number,
        estimated_delivery=booking.estimated_delivery,
        cancelled=booking.status == Status.CANCELLED,
    )


def _working_days_from(start: dt.date, days: int) -> dt.date:
    day = start
    while days:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day
