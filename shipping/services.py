"""The shipping context's use cases: the only code that changes shipments."""

from uuid import UUID

from django.db import transaction

from outbox.publishing import publish

from .carrier import carrier
from .events import ShippingArranged
from .models import Shipment

Status = Shipment.Status


@transaction.atomic
def shipment_book(*, order_id: UUID, address: dict, parcels: int, idempotency_key: str) -> Shipment:
    """Book a carrier for the order, once."""
    shipment = _shipment_for_update(order_id, if_new=Status.PENDING)
    if shipment.status != Status.PENDING:
        return shipment  # booked already, or the order was cancelled first
    booking = carrier().book(address=address, parcels=parcels, idempotency_key=idempotency_key)
    shipment.address = address
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
    """Call off the order's shipment; before any booking, make sure none will be made."""
    shipment = _shipment_for_update(order_id, if_new=Status.CANCELLED)
    if shipment.status == Status.BOOKED:
        carrier().cancel(tracking_number=shipment.tracking_number)
        shipment.cancel()
        shipment.save(update_fields=["status", "updated_at"])
    return shipment


def _shipment_for_update(order_id: UUID, *, if_new: str) -> Shipment:
    shipment, created = Shipment.objects.get_or_create(order_id=order_id, defaults={"status": if_new})
    return shipment if created else Shipment.objects.select_for_update().get(pk=shipment.pk)
