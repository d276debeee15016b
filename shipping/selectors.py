"""Read-side queries of the shipping context."""

from uuid import UUID

from .models import Shipment


def shipment_for_order(*, order_id: UUID) -> Shipment | None:
    return Shipment.objects.filter(order_id=order_id).first()
