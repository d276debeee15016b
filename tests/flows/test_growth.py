"""How the outbox's tables grow per order: the figures docs/operations.md ("Retention") states.

``ORDERS`` orders paid with a good card go through the whole flow (real relay and worker) on
emptied tables; then each table's rows and bytes are divided by the number of orders. Rows are
exact, and asserted; bytes depend on payload sizes and vacuum timing, and are printed::

    .venv/bin/python -m pytest tests/flows/test_growth.py -s -p no:cacheprovider
"""

import pytest
from django.db import connection

from outbox.models import Delivery, OutboxEvent
from tests.factories import make_product, place_order
from tests.flows.conftest import wait_until_final
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]

ORDERS = 200
TABLES = ("outbox_event", "outbox_delivery", "outbox_inbox")
# Rows a shipped order of one SKU adds: 7 events of the catalogue (placed, confirmed, paid, reserved, ready,
# arranged, shipped) and 2 of the SKU's stock stream (StockReserved, StockShipped; 2 more per further SKU);
# 9 deliveries (OrderConfirmed has 3 subscribers, OrderShipped 2, the other four 1 each, the stock events
# and OrderPlaced none); an inbox row per delivery done.
ROWS_PER_SHIPPED_ORDER = {"outbox_event": 9, "outbox_delivery": 9, "outbox_inbox": 9}


def table_figures() -> dict[str, tuple[int, int, int, int]]:
    """Per table: rows, bytes of their live row versions, heap (and TOAST) bytes, index bytes."""
    figures = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(
                f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0), pg_table_size(%s), pg_indexes_size(%s)"
                f" FROM {table} t",
                [table, table],
            )
            figures[table] = cursor.fetchone()
    return figures


def settled() -> bool:
    return not (
        OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
        or Delivery.objects.filter(status__in=Delivery.UNFINISHED).exists()
    )


def test_each_shipped_order_adds_the_rows_the_docs_state(live_outbox):
    # given the tables as a transactional test starts them (emptied), and stock for every order
    product = make_product(on_hand=ORDERS)
    wait_for(settled, timeout=30, what="the product's stock events to settle")
    before = table_figures()
    # when every order is confirmed and ships
    orders = [place_order(lines=[(product, 1)], confirm=True) for _ in range(ORDERS)]
    orders = wait_until_final(orders, live_outbox=live_outbox, timeout=180)
    wait_for(settled, timeout=60, what=lambda: f"the outbox to settle\n{live_outbox.logs()}")
    after = table_figures()
    # then each table grew by the documented rows per order
    assert {o.status for o in orders} == {"shipped"}
    per_order = {t: [(a - b) / ORDERS for a, b in zip(after[t], before[t], strict=True)] for t in TABLES}
    print(f"\nper shipped order, over {ORDERS} orders: rows, live row bytes, table bytes, index bytes")
    for table, (rows, live, heap, indexes) in per_order.items():
        print(f"  {table:16} {rows:5.2f} {live:8.0f} {heap:8.0f} {indexes:8.0f}")
    assert {t: rows for t, (rows, *_) in per_order.items()} == ROWS_PER_SHIPPED_ORDER
