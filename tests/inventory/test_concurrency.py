"""Reservations racing in real concurrent transactions (threads, each with its own connection)."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from inventory.events import StockLine
from inventory.models import Reservation
from inventory.selectors import stock_level, stock_replayed
from inventory.services import stock_reserve
from inventory.stock import StockState
from outbox.models import OutboxEvent
from tests.factories import make_product

# Real commits, so the standard relay and worker are stopped: nothing else should touch the tables.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_live_outbox")]


def _race(calls: list) -> list:
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result() for f in [pool.submit(run, call) for call in calls]]


def test_twenty_reservations_for_ten_units_at_once_reserve_exactly_ten():
    # given
    product = make_product(on_hand=10)
    orders = [uuid.uuid4() for _ in range(20)]
    # when all twenty reserve at the same moment
    results = _race(
        [lambda o=o: stock_reserve(order_id=o, lines=[StockLine(sku=product.sku, quantity=1)]) for o in orders]
    )
    # then
    assert sorted(r.status for r in results) == ["failed"] * 10 + ["reserved"] * 10
    level = stock_level(sku=product.sku)
    assert (level.on_hand, level.reserved) == (10, 10)
    # and the SKU's stream holds the receipt and exactly the ten winners, which fold to the projection
    stream = OutboxEvent.objects.filter(aggregate_type="inventory.StockItem", aggregate_id=product.sku)
    assert (
        sorted(stream.values_list("type", flat=True)) == ["inventory.StockReceived"] + ["inventory.StockReserved"] * 10
    )
    winners = {str(r.order_id) for r in results if r.status == "reserved"}
    assert {e.payload["order_id"] for e in stream.filter(type="inventory.StockReserved")} == winners
    assert stock_replayed(sku=product.sku)[0] == StockState(on_hand=10, reserved=10, version=11)


def test_orders_locking_the_same_skus_in_opposite_line_order_do_not_deadlock():
    # given two SKUs and orders listing them in opposite orders
    a, b = make_product(on_hand=100), make_product(on_hand=100)
    forwards = [StockLine(sku=a.sku, quantity=1), StockLine(sku=b.sku, quantity=1)]
    backwards = list(reversed(forwards))
    orders = [uuid.uuid4() for _ in range(12)]
    # when
    results = _race(
        [lambda i=i: stock_reserve(order_id=orders[i], lines=forwards if i % 2 else backwards) for i in range(12)]
    )
    # then
    assert {r.status for r in results} == {"reserved"}
    assert stock_level(sku=a.sku).reserved == stock_level(sku=b.sku).reserved == 12
    assert Reservation.objects.filter(order_id__in=orders, status="reserved").count() == 12
