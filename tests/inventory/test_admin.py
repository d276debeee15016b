"""The stock pages of the admin: the stream's history on each stock item, receiving through the service."""

import uuid

import pytest
from django.urls import reverse

from inventory.events import StockLine
from inventory.models import StockItem
from inventory.services import stock_reserve
from outbox.models import OutboxEvent
from tests.factories import make_product
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(make_user("stocky", staff=True, is_superuser=True))
    return client


def test_the_stock_page_shows_the_skus_stream_with_the_stock_after_each_event(staff_client):
    # given a product received and then reserved for an order
    product = make_product(on_hand=7)
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=3)])
    item = StockItem.objects.get(sku=product.sku)
    # when
    page = staff_client.get(reverse("admin:inventory_stockitem_change", args=[item.pk])).content.decode()
    # then each event is listed, linked to the event log, with the balance after it
    received, reserved = OutboxEvent.objects.filter(aggregate_id=product.sku).order_by("id")
    assert reverse("admin:outbox_outboxevent_change", args=[reserved.id]) in page
    assert "<td>StockReceived</td><td>7</td><td>-</td><td>7</td><td>0</td>" in page
    assert f"<td>StockReserved</td><td>3</td><td>{order_id}</td><td>7</td><td>3</td>" in page
    assert page.index(f"#{reserved.id}") < page.index(f"#{received.id}")  # newest first


def test_receive_ten_appends_a_receipt_to_each_selected_stream(staff_client):
    # given
    product = make_product(on_hand=1)
    item = StockItem.objects.get(sku=product.sku)
    # when
    staff_client.post(
        reverse("admin:inventory_stockitem_changelist"), {"action": "receive_ten", "_selected_action": [item.pk]}
    )
    # then
    item.refresh_from_db()
    assert (item.on_hand, item.version) == (11, 2)
    assert OutboxEvent.objects.filter(aggregate_id=product.sku, type="inventory.StockReceived").count() == 2
