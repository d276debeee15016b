"""The shipping context's use cases: the only code that changes shipments.

The carrier booking's idempotency key is derived from the order, not from
the delivered event: a retry finds the booking an attempt that rolled back
made, and a cancellation calls it off.
"""

from uuid import UUID

from django.db import transaction

from config.db import locked_or_created
from outbox.publishing import publish

from .carrier import carrier
from .events import ShippingArranged
from .models import Shipment

Status = Shipment.Status


def booking_key(order_id: UUID) -> str:
    """The idempotency key of the order's carrier booking (and of its cancellation)."""
    return f"book-{order_id}"


@transaction.atomic
def shipment_book(*, order_id: UUID, address: dict, parcels: int) -> Shipment:
    """Book a carrier for the order, once."""
    shipment = locked_or_created(Shipment, order_id=order_id, defaults={"status": Status.PENDING})
    if shipment.status != Status.PENDING:
        return shipment  # booked already, or the order was cancelled first
    booking = carrier().book(address=address, parcels=parcels, idempotency_key=booking_key(order_id))
    shipment.address = address
    if booking.cancelled:  # a cancellation that rolled back here reached the carrier: nothing ships
        shipment.called_off_at_carrier(carrier=booking.carrier, tracking_number=booking.tracking_number)
        shipment.save()
        return shipment
    shipment.book(
        carrier=booking.carrier,
        tracking_number=booking.tracking_number,
        estimated_delivery=booking.estimated_delivery,
    )
    shipment.save()
    publish(
        ShippingArranged(
            shipment_id=shipment.id,
            order_id=order_id,
            carrier=booking.carrier,
            tracking_number=booking.tracking_number,
            estimated_delivery=booking.estimated_delivery,
        )
    )
    return shipment


@transaction.atomic
def shipment_cancel(*, order_id: UUID) -> Shipment:
    """Call off the order's shipment; before any booking of ours, make sure none will be made.

    The carrier is asked to cancel under the order's key even when our side
    shows no booking: an attempt that booked and then rolled back left one there.
    """
    shipment = locked_or_created(Shipment, order_id=order_id, defaults={"status": Status.CANCELLED})
    called_off = carrier().cancel(idempotency_key=booking_key(order_id))
    if called_off is not None:
        shipment.called_off_at_carrier(carrier=called_off.carrier, tracking_number=called_off.tracking_number)
    elif shipment.status != Status.CANCELLED:
        shipment.cancel()
    shipment.save(update_fields=["status", "carrier", "tracking_number", "updated_at"])
    return shipment


@transaction.atomic
def shipments_forget_customer(*, order_ids: list[UUID]) -> int:
    """Erase the addresses the customer's shipments keep, here and at the carrier. Safe to repeat."""
    erased = Shipment.objects.filter(order_id__in=order_ids).update(address=None)
    for order_id in order_ids:
        carrier().erase_address(idempotency_key=booking_key(order_id))
    return erased
