import datetime as dt
import uuid

import pytest
from django.db import transaction

from outbox.models import OutboxEvent
from shipping import sandbox
from shipping.services import booking_key, shipment_book, shipment_cancel
from tests.factories import ADDRESS

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])


class WorkerDied(Exception):
    """Stands for whatever ends a handler's transaction after the carrier answered."""


def _book(order_id):
    return shipment_book(order_id=order_id, address=ADDRESS, parcels=2)


def _book_then_roll_back(order_id) -> None:
    """An attempt whose transaction rolled back after the carrier booked (a crash before our commit)."""
    with pytest.raises(WorkerDied), transaction.atomic():
        _book(order_id)
        raise WorkerDied


def _published(order_id) -> list[dict]:
    rows = OutboxEvent.objects.filter(type="shipping.ShippingArranged").order_by("id")
    return [r.payload for r in rows if r.payload["order_id"] == str(order_id)]


def _at_carrier(order_id) -> dict[str, int]:
    return dict(sandbox.booking_counts(idempotency_keys=[booking_key(order_id)]))


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
    # and the carrier keeps the booking under the order's key
    [booking] = sandbox.bookings(idempotency_keys=[booking_key(order_id)])
    assert (booking.tracking_number, booking.parcels, booking.status) == (shipment.tracking_number, 2, "booked")


def test_booking_twice_books_once():
    order_id = uuid.uuid4()
    first, again = _book(order_id), _book(order_id)
    assert first.tracking_number == again.tracking_number
    assert len(_published(order_id)) == 1
    assert _at_carrier(order_id) == {"booked": 1}


def test_the_carrier_booked_then_our_transaction_rolled_back_and_the_retry_does_not_book_again():
    # given an attempt the carrier booked, and whose transaction then rolled back
    order_id = uuid.uuid4()
    _book_then_roll_back(order_id)
    [booking] = sandbox.bookings(idempotency_keys=[booking_key(order_id)])
    # when the outbox retries
    shipment = _book(order_id)
    # then the retry found that booking: one at the carrier, and it is ours
    assert (shipment.status, shipment.tracking_number) == ("booked", booking.tracking_number)
    assert _at_carrier(order_id) == {"booked": 1}
    assert len(_published(order_id)) == 1


def test_a_cancellation_calls_off_a_booking_made_by_an_attempt_that_rolled_back():
    # given the carrier booked an attempt whose transaction then rolled back: our side shows no shipment
    order_id = uuid.uuid4()
    _book_then_roll_back(order_id)
    [booking] = sandbox.bookings(idempotency_keys=[booking_key(order_id)])
    # when the order is cancelled
    shipment = shipment_cancel(order_id=order_id)
    # then the carrier cancelled that booking, and the shipment says which
    assert (shipment.status, shipment.tracking_number) == ("cancelled", booking.tracking_number)
    assert _at_carrier(order_id) == {"cancelled": 1}
    # and a late "ready to ship" books nothing
    assert _book(order_id).status == "cancelled"
    assert _at_carrier(order_id) == {"cancelled": 1}
    assert _published(order_id) == []


def test_a_cancellation_heard_before_ready_to_ship_prevents_the_booking():
    # given
    order_id = uuid.uuid4()
    shipment_cancel(order_id=order_id)
    # when
    shipment = _book(order_id)
    # then
    assert (shipment.status, shipment.tracking_number) == ("cancelled", "")
    assert _published(order_id) == []
    assert _at_carrier(order_id) == {}


def test_a_booked_shipment_is_called_off_at_the_carrier_when_the_order_is_cancelled():
    order_id = uuid.uuid4()
    booked = _book(order_id)
    shipment = shipment_cancel(order_id=order_id)
    assert (shipment.status, shipment.tracking_number) == ("cancelled", booked.tracking_number)
    assert _at_carrier(order_id) == {"cancelled": 1}


def test_a_booking_called_off_by_a_cancellation_that_then_rolled_back_is_not_shipped():
    # given the carrier cancelled an orphan booking, but the cancellation's transaction rolled back
    order_id = uuid.uuid4()
    _book_then_roll_back(order_id)
    with pytest.raises(WorkerDied), transaction.atomic():
        shipment_cancel(order_id=order_id)
        raise WorkerDied
    # when a retried "ready to ship" books under the order's key
    shipment = _book(order_id)
    # then the carrier answers with the cancelled booking: nothing is arranged
    assert shipment.status == "cancelled"
    assert _published(order_id) == []
    assert _at_carrier(order_id) == {"cancelled": 1}
