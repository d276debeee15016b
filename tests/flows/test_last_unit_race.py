"""Twenty customers race for ten units, through concurrent workers: ten win, ten are cancelled."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from inventory.models import Reservation
from inventory.selectors import stock_level
from orders.models import Order
from orders.services import order_confirm
from outbox.models import Delivery, OutboxEvent
from payments.models import Payment
from tests.factories import make_product, place_order
from tests.flows.conftest import wait_until_final, wait_until_settled
from tests.support.processes import start_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]

ORDERS, UNITS = 20, 10


@pytest.fixture
def inventory_workers(live_outbox):
    """Four more processes on the inventory queue, beside the standard worker's two."""
    worker = start_worker(queues="inventory", concurrency=4, OUTBOX_LEASE_SECONDS="5")
    yield worker
    worker.stop()


def test_twenty_orders_for_ten_units_reserve_exactly_ten_and_never_go_negative(live_outbox, inventory_workers):
    # given ten units and twenty draft orders for one unit each
    product = make_product(on_hand=UNITS)
    orders = [place_order(lines=[(product, 1)], token="tok_visa") for _ in range(ORDERS)]
    # when all twenty are confirmed at once, from five threads
    _confirm_all_at_once(orders)
    # then, watching the stock all along, it is never negative nor over-reserved
    samples = []

    def finished() -> bool:
        level = stock_level(sku=product.sku)
        samples.append((level.on_hand, level.reserved))
        return Order.objects.filter(id__in=[o.id for o in orders], status__in=Order.FINAL).count() == ORDERS

    wait_for(finished, timeout=60, interval=0.02, what=f"all orders to finish\n{live_outbox.logs()}")
    assert all(on_hand >= 0 and 0 <= reserved <= on_hand for on_hand, reserved in samples)
    orders = wait_until_final(orders, live_outbox=live_outbox)
    for order in orders:
        wait_until_settled(order, live_outbox=live_outbox)
    winners = [o for o in orders if o.status == "shipped"]
    losers = [o for o in orders if o.status == "cancelled"]
    assert (len(winners), len(losers)) == (UNITS, ORDERS - UNITS)
    assert {o.cancel_code for o in losers} == {"out_of_stock"}
    reservations = Reservation.objects.filter(order_id__in=[o.id for o in orders])
    assert sorted(reservations.values_list("status", flat=True)) == ["failed"] * 10 + ["shipped"] * 10
    assert (
        OutboxEvent.objects.filter(type="inventory.InventoryReserved", aggregate_id__in=_ids(reservations)).count()
        == 10
    )
    # all ten units left the warehouse; nobody who lost keeps a charge
    assert _refunded(losers) == len(losers)
    assert (stock_level(sku=product.sku).on_hand, stock_level(sku=product.sku).reserved) == (0, 0)
    assert not Delivery.objects.filter(event__correlation_id__in=[o.correlation_id for o in orders], status="dead")


def _confirm_all_at_once(orders: list[Order]) -> None:
    start = threading.Barrier(5)

    def confirm(batch: list[Order]) -> None:
        start.wait()
        try:
            for order in batch:
                order_confirm(order_id=order.id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=5) as pool:
        for future in [pool.submit(confirm, orders[i::5]) for i in range(5)]:
            future.result()


def _ids(reservations) -> list[str]:
    return [str(pk) for pk in reservations.values_list("id", flat=True)]


def _refunded(orders: list[Order]) -> int:
    return Payment.objects.filter(order_id__in=[o.id for o in orders], status="refunded").count()
