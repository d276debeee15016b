import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from inventory import handlers
from inventory.catalogue import catalogue_prices
from inventory.events import StockLine
from inventory.models import Reservation, StockItem
from inventory.selectors import stock_level
from inventory.services import product_ensure, stock_receive, stock_release, stock_reserve, stock_ship_out
from orders.services import order_cancel
from outbox.events import registry
from outbox.models import OutboxEvent
from tests.factories import handle, make_product, place_order

pytestmark = pytest.mark.django_db


def _events(order_id) -> list[tuple[str, dict]]:
    """The order-level facts about the order (not the per-SKU stock events)."""
    rows = OutboxEvent.objects.filter(aggregate_type="inventory.Reservation", payload__order_id=str(order_id))
    return [(r.type, r.payload) for r in rows.order_by("id")]


def _level(product) -> tuple[int, int]:
    level = stock_level(sku=product.sku)
    return level.on_hand, level.reserved


def test_reserving_holds_every_line_and_publishes_inventory_reserved():
    # given
    a, b = make_product(on_hand=5), make_product(on_hand=5)
    order_id = uuid.uuid4()
    # when
    stock_reserve(order_id=order_id, lines=[StockLine(sku=a.sku, quantity=2), StockLine(sku=b.sku, quantity=5)])
    # then
    assert (_level(a), _level(b)) == ((5, 2), (5, 5))
    [(type_, payload)] = _events(order_id)
    assert type_ == "inventory.InventoryReserved"
    assert sorted((line["sku"], line["quantity"]) for line in payload["lines"]) == sorted([(a.sku, 2), (b.sku, 5)])


def test_one_short_line_reserves_nothing_and_names_the_short_sku():
    # given
    plenty, scarce = make_product(on_hand=50), make_product(on_hand=1)
    order_id = uuid.uuid4()
    # when
    reservation = stock_reserve(
        order_id=order_id, lines=[StockLine(sku=plenty.sku, quantity=3), StockLine(sku=scarce.sku, quantity=2)]
    )
    # then
    assert reservation.status == "failed"
    assert (_level(plenty), _level(scarce)) == ((50, 0), (1, 0))
    [(type_, payload)] = _events(order_id)
    assert type_ == "inventory.InventoryReservationFailed"
    assert payload["shortages"] == [{"sku": scarce.sku, "requested": 2, "available": 1}]


def test_an_unknown_sku_is_short_with_nothing_available():
    order_id = uuid.uuid4()
    reservation = stock_reserve(order_id=order_id, lines=[StockLine(sku="GONE", quantity=1)])
    assert reservation.shortages == [{"sku": "GONE", "requested": 1, "available": 0}]


def test_reserving_twice_for_one_order_holds_stock_once():
    # given
    product = make_product(on_hand=5)
    order_id = uuid.uuid4()
    lines = [StockLine(sku=product.sku, quantity=2)]
    # when
    stock_reserve(order_id=order_id, lines=lines)
    stock_reserve(order_id=order_id, lines=lines)
    # then
    assert _level(product) == (5, 2)
    assert len(_events(order_id)) == 1


def test_release_returns_reserved_stock_and_publishes_inventory_released():
    # given
    product = make_product(on_hand=5)
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=3)])
    # when
    stock_release(order_id=order_id)
    stock_release(order_id=order_id)
    # then
    assert _level(product) == (5, 0)
    assert [t for t, _ in _events(order_id)] == ["inventory.InventoryReserved", "inventory.InventoryReleased"]


def test_a_cancellation_heard_before_the_confirmation_prevents_the_reservation():
    # given inventory learns of the cancellation first
    product = make_product(on_hand=5)
    order_id = uuid.uuid4()
    stock_release(order_id=order_id)
    # when the confirmation arrives late
    reservation = stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=1)])
    # then
    assert reservation.status == "cancelled"
    assert _level(product) == (5, 0)
    assert _events(order_id) == []


def test_shipping_out_takes_reserved_units_off_the_shelf():
    # given
    product = make_product(on_hand=5)
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=2)])
    # when
    stock_ship_out(order_id=order_id)
    stock_ship_out(order_id=order_id)
    # then
    assert _level(product) == (3, 0)
    assert Reservation.objects.get(order_id=order_id).status == "shipped"


def test_the_database_refuses_negative_or_over_reserved_stock():
    # given
    product = make_product(on_hand=2)
    # when / then
    for change in ({"on_hand": -1}, {"reserved": 3}):
        with pytest.raises(IntegrityError), transaction.atomic():
            StockItem.objects.filter(sku=product.sku).update(**change)
    assert _level(product) == (2, 0)


def test_receiving_goods_adds_to_on_hand():
    product = make_product(on_hand=2)
    stock_receive(sku=product.sku, quantity=10)
    assert _level(product) == (12, 0)


def test_product_ensure_is_idempotent_and_leaves_an_existing_product_alone():
    # given
    product_ensure(sku="IDEM-1", name="First", price=Decimal("1.00"), on_hand=5)
    # when
    product_ensure(sku="IDEM-1", name="Second", price=Decimal("2.00"), on_hand=99)
    # then
    prices = catalogue_prices(skus=["IDEM-1", "NOPE"])
    assert list(prices) == ["IDEM-1"]
    assert (prices["IDEM-1"].name, prices["IDEM-1"].price, prices["IDEM-1"].currency) == (
        "First",
        Decimal("1.00"),
        "EUR",
    )
    assert stock_level(sku="IDEM-1").on_hand == 5


def test_the_handlers_reserve_then_release_from_the_order_events():
    # given a confirmed, then cancelled, order
    product = make_product(on_hand=5)
    order = place_order(lines=[(product, 2)], confirm=True)
    order_cancel(order_id=order.id, reason="x", by_user_id=order.customer_id)
    confirmed, cancelled = (_decoded(order, t) for t in ("orders.OrderConfirmed", "orders.OrderCancelled"))
    # when / then
    handle(handlers.reserve_stock, confirmed)
    assert _level(product) == (5, 2)
    handle(handlers.release_stock, cancelled)
    assert _level(product) == (5, 0)


def _decoded(order, type_: str):
    row = OutboxEvent.objects.get(correlation_id=order.correlation_id, type=type_)
    return registry.decode(row.type, row.version, row.payload)
