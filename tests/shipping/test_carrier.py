"""The sandbox carrier behaves like a real one: its bookings are kept in a store of its own."""

import datetime as dt
import uuid

import psycopg
import pytest
from django.db import connections, transaction

from shipping import sandbox
from shipping.carrier import carrier
from shipping.models import SandboxBooking
from shipping.sandbox import SandboxCarrier, _working_days_from
from tests.factories import ADDRESS

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])


class WorkerDied(Exception):
    """Stands for whatever ends a handler's transaction after the carrier answered."""


def key() -> str:
    return str(uuid.uuid4())


def test_the_default_carrier_is_the_sandbox_and_its_bookings_live_in_the_provider_store():
    assert isinstance(carrier(), SandboxCarrier)
    assert SandboxBooking.objects.db == "sandbox"


def test_booking_a_key_again_returns_the_first_booking():
    k = key()
    first = SandboxCarrier().book(address=ADDRESS, parcels=1, idempotency_key=k)
    again = SandboxCarrier().book(address=ADDRESS, parcels=3, idempotency_key=k)
    assert again == first
    assert sandbox.booking_counts(idempotency_keys=[k]) == {"booked": 1}
    assert sandbox.bookings(idempotency_keys=[k]).get().parcels == 1


def test_cancelling_calls_off_the_booking_under_a_key_once():
    # given
    k = key()
    booked = SandboxCarrier().book(address=ADDRESS, parcels=1, idempotency_key=k)
    # when
    first = SandboxCarrier().cancel(idempotency_key=k)
    again = SandboxCarrier().cancel(idempotency_key=k)
    # then
    assert first == again
    assert (first.tracking_number, first.cancelled) == (booked.tracking_number, True)
    assert sandbox.booking_counts(idempotency_keys=[k]) == {"cancelled": 1}


def test_cancelling_a_key_never_booked_calls_off_nothing():
    assert SandboxCarrier().cancel(idempotency_key=key()) is None


@pytest.mark.django_db(transaction=True, databases=["default", "sandbox"])
def test_the_carriers_booking_survives_our_rollback():
    # given
    k = key()
    # when our transaction rolls back after the carrier booked
    with pytest.raises(WorkerDied), transaction.atomic():
        booked = SandboxCarrier().book(address=ADDRESS, parcels=1, idempotency_key=k)
        raise WorkerDied
    # then the booking is committed at the carrier: another client of its database sees it
    db = connections["sandbox"].settings_dict
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"]) as stranger:
        query = "SELECT tracking_number, status FROM shipping_sandboxbooking WHERE idempotency_key = %s"
        assert stranger.execute(query, [k]).fetchall() == [(booked.tracking_number, "booked")]


def test_the_sandbox_carrier_delivers_on_working_days():
    friday = dt.date(2030, 1, 4)
    assert _working_days_from(friday, 3) == dt.date(2030, 1, 9)  # Wednesday
