"""``locked_or_created``: the row, locked, or made; in real concurrent transactions (threads, own connections)."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from django.db import connection, transaction

from config.db import locked_or_created
from shipping.models import Shipment
from tests.support.processes import wait_for

PENDING, CANCELLED = Shipment.Status.PENDING, Shipment.Status.CANCELLED


@pytest.mark.django_db
def test_a_missing_row_is_made_with_the_defaults_and_a_row_that_exists_is_returned_as_it_is():
    order_id = uuid.uuid4()
    with transaction.atomic():
        made = locked_or_created(Shipment, order_id=order_id, defaults={"status": PENDING})
    with transaction.atomic():
        found = locked_or_created(Shipment, order_id=order_id, defaults={"status": CANCELLED})
    assert (made.pk, made.status) == (found.pk, PENDING)
    assert Shipment.objects.filter(order_id=order_id).count() == 1


def _hold(order_id: uuid.UUID, holding: threading.Event, release: threading.Event) -> Shipment:
    """In a transaction of its own: take the row, say so, and keep it until told to let go."""
    try:
        with transaction.atomic():
            row = locked_or_created(Shipment, order_id=order_id, defaults={"status": PENDING})
            holding.set()
            assert release.wait(timeout=30), "never told to let go"
        return row
    finally:
        connection.close()


def _take(order_id: uuid.UUID) -> Shipment:
    try:
        with transaction.atomic():
            return locked_or_created(Shipment, order_id=order_id, defaults={"status": CANCELLED})
    finally:
        connection.close()


def admin_connection() -> psycopg.Connection:
    """A connection to the test database outside Django, so outside the transactions under test."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    )


def _locked_elsewhere(order_id: uuid.UUID) -> bool:
    with admin_connection() as admin, admin.transaction():
        try:
            admin.execute("SELECT 1 FROM shipping_shipment WHERE order_id = %s FOR UPDATE NOWAIT", [order_id])
        except psycopg.errors.LockNotAvailable:
            return True
    return False


def _waiting_to_insert() -> int:
    with admin_connection() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            """AND query LIKE 'INSERT INTO "shipping_shipment"%%'"""
        ).fetchone()
    return row[0]


@pytest.mark.django_db(transaction=True)
def test_a_row_that_exists_stays_locked_until_the_transaction_ends():
    # given a shipment
    order_id = Shipment.objects.create(order_id=uuid.uuid4(), status=PENDING).order_id
    holding, release = threading.Event(), threading.Event()
    with ThreadPoolExecutor(1) as pool:
        # when a transaction takes it
        held = pool.submit(_hold, order_id, holding, release)
        assert holding.wait(timeout=30)
        # then no other transaction can lock it until that one ends
        try:
            assert _locked_elsewhere(order_id)
        finally:
            release.set()
        held.result(timeout=30)
    assert not _locked_elsewhere(order_id)


@pytest.mark.django_db(transaction=True)
def test_a_second_maker_of_the_same_row_waits_for_the_first_and_gets_its_row():
    # given a transaction that made the row and has not committed
    order_id = uuid.uuid4()
    holding, release = threading.Event(), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_hold, order_id, holding, release)
        assert holding.wait(timeout=30)
        # when a second transaction asks for the same row, with other defaults
        second = pool.submit(_take, order_id)
        try:
            # then it waits on the unique index for the first to end
            wait_for(lambda: _waiting_to_insert() == 1, timeout=30, what="the second maker to wait on the index")
            assert not second.done()
        finally:
            release.set()
        made, taken = first.result(timeout=30), second.result(timeout=30)
    # and, once the first commits, it gets the first's row (no IntegrityError, no second row)
    assert (taken.pk, taken.status) == (made.pk, PENDING)
    assert Shipment.objects.filter(order_id=order_id).count() == 1
