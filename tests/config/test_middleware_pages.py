"""The shop's pages under database faults, with the request's own PostgreSQL connection really dropped.

Placing, confirming or cancelling that committed goes on to the order's page
however the connection fares after the commit; a connection lost before it
is a plain 503 page with ``Retry-After``, and pressing the button again is
safe.
"""

import pytest

from config.api.errors import RETRY_AFTER_SECONDS
from orders.models import Order
from outbox.models import OutboxEvent
from tests.factories import make_product, place_order
from tests.orders.test_views import page_url
from tests.orders.test_views_order_form import NEW_ORDER, order_form
from tests.support.db_faults import connection_dropped_at, connection_dropped_once_committed

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_placement_that_committed_goes_on_to_the_orders_page_though_the_connection_drops(signed_in, alice):
    # given
    pen = make_product(price="1.20")
    # when
    with connection_dropped_once_committed() as fault:
        response = signed_in.post(NEW_ORDER, order_form((pen.sku, 2)))
    # then
    assert fault.dropped, "the connection was never dropped"
    order = Order.objects.get(customer=alice)
    assert (response.status_code, response["Location"]) == (302, page_url(order))


@pytest.mark.parametrize(
    ("action", "form", "status"),
    [("confirm", {}, "confirmed"), ("cancel", {"reason": "Changed my mind."}, "cancelled")],
)
def test_a_button_whose_work_committed_goes_back_to_the_order_though_the_connection_drops(
    signed_in, alice, action, form, status
):
    # given
    order = place_order(customer=alice)
    # when
    with connection_dropped_once_committed() as fault:
        response = signed_in.post(page_url(order, action), form)
    # then
    assert fault.dropped
    assert (response.status_code, response["Location"]) == (302, page_url(order))
    order.refresh_from_db()
    assert order.status == status


def test_a_page_whose_connection_drops_mid_request_is_a_plain_503_page_with_retry_after(signed_in, alice):
    # given
    order = place_order(customer=alice)
    # when the connection drops as the view reads the order
    with connection_dropped_at('SELECT "orders_order"') as fault:
        response = signed_in.get(page_url(order))
    # then
    assert fault.dropped
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert b"<h1>Back in a moment</h1>" in response.content
    # and the page is served again on the next request
    assert signed_in.get(page_url(order)).status_code == 200


def test_confirming_when_the_connection_drops_before_the_commit_is_503_and_pressing_again_confirms_once(
    signed_in, alice
):
    # given
    order = place_order(customer=alice)
    # when the connection drops as the confirmation writes the order
    with connection_dropped_at('UPDATE "orders_order"') as fault:
        response = signed_in.post(page_url(order, "confirm"))
    # then nothing was done
    assert fault.dropped
    assert response.status_code == 503
    order.refresh_from_db()
    assert order.status == "draft"
    # when the customer presses the button again, twice
    statuses = [signed_in.post(page_url(order, "confirm")).status_code for _ in range(2)]
    # then it is confirmed, once
    assert statuses == [302, 302]
    order.refresh_from_db()
    assert order.status == "confirmed"
    assert OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderConfirmed").count() == 1
