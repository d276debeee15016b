import datetime as dt
import uuid

import pytest

from outbox.models import OutboxEvent
from shipping.carrier import SandboxCarrier, _working_days_from
from shipping.services import shipment_book, shipment_cancel
from tests.factories import ADDRESS

pytestmark = pytest.mark.django_db


def _book(order_id, key="k1"):
    return shipment_book(order_id=order_id, address=ADDRESS, parcels=2, idempotency_key=key)


def _published(order_id) -> list[dict]:
    rows = OutboxEvent.objects.filter(type="shipping.ShippingArranged").order_by("id")
    return [r.payload for r in rows if r.payload["order_id"] == str(order_id)]


def test_booking_a_carrier_publishes_shipping_arranged_with_tracking_and_eta():
    # given
    order_id = uuid.uuid4()
    # when
    shipment = _book(order_id)
    # then
    assert (shipment.status, shipment.carrier) == ("booked", "Sandbox Parcel")
    assert shipment.tracking_number.startswith("SBX")
    assert shipment.estimated_delivery > dt.date.today()
    [payload] = _published(order_id)
    assert payload["tracking_number"] == shipment.tracking_number
    assert payload["estimated_delivery"] == shipment.estimated_delivery.isoformat()


def test_booking_twice_books_once():
    order_id = uuid.uuid4()
    first, again = _book(order_id, "k1"), _book(order_id, "k2")
    assert first.tracking_number == again.tracking_number
    assert len(_published(order_id)) == 1


def test_a_cancellation_heard_before_ready_to_ship_prevents_the_booking():
    # given
    order_id = uuid.uuid4()
    shipment_cancel(order_id=order_id)
    # when
    shipment = _book(order_id)
    # then
    assert shipment.status == "cancelled"
    assert _published(order_id) == []


def test_a_booked_shipment_is_called_off_when_the_order_is_cancelled():
    order_id = uuid.uuid4()
    _book(order_id)
    assert shipment_cancel(order_id=order_id).status == "cancelled"


def test_the_sandbox_carrier_is_deterministic_per_key_and_delivers_on_working_days():
    carrier = SandboxCarrier()
    assert carrier.book(address=ADDRESS, parcels=1, idempotency_key="same") == carrier.book(
        address=ADDRESS, parcels=1, idempotency_key="same"
    )
    friday = dt.date(2030, 1, 4)
    assert _working_days_from(friday, 3) == dt.date(2030, 1, 9)  # Wednesday
