"""The orders admin: the changelist, an order's page with its event timeline, and the cancel action."""

import pytest
from django.urls import reverse

from orders.models import Order
from tests.factories import make_product, place_order

pytestmark = pytest.mark.django_db


def test_an_orders_page_shows_its_lines_saga_and_event_timeline(admin_client):
    # given
    order = place_order(lines=[(make_product(), 2)], confirm=True)
    # when
    listing = admin_client.get(reverse("admin:orders_order_changelist"), {"status__exact": "confirmed"})
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]))
    # then
    assert listing.status_code == page.status_code == 200
    assert str(order.pk) in listing.content.decode()
    html = page.content.decode()
    assert "orders.OrderPlaced" in html
    assert "orders.OrderConfirmed" in html
    assert order.lines.get().sku in html


def test_the_cancel_action_cancels_through_the_service_and_reports_what_it_refused(admin_client):
    # given one confirmed and one shipped order
    confirmed = place_order(confirm=True)
    shipped = place_order(confirm=True)
    Order.objects.filter(pk=shipped.pk).update(status=Order.Status.SHIPPED)
    # when
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_orders", "_selected_action": [confirmed.pk, shipped.pk]},
        follow=True,
    )
    # then
    confirmed.refresh_from_db()
    assert (confirmed.status, confirmed.cancel_code) == ("cancelled", "staff")
    assert Order.objects.get(pk=shipped.pk).status == "shipped"
    assert "it cannot be cancelled" in response.content.decode()
