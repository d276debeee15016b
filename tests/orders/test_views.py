"""A customer's orders, and one order's page: its state, its timeline, confirm and cancel; only for its customer."""

import datetime as dt

import pytest
from django.test import Client
from django.test.html import parse_html

from orders import saga
from orders.models import Order
from orders.services import order_cancel
from outbox.models import Delivery
from outbox.relay import fan_out
from tests.factories import make_product, place_order
from tests.support.html import element, elements, errors_in, field_block, text

pytestmark = pytest.mark.django_db


def page_url(order: Order, action: str = "") -> str:
    return f"/orders/{order.id}/{action + '/' if action else ''}"


def state(response) -> dict[str, str]:
    """The order's state table: row heading -> the value shown."""
    table = element(response, "table", id="order-state")
    return {text(row.children[0]): text(row.children[1]) for row in table.children}


def timeline(response) -> list[tuple[str, str, list[str]]]:
    """(event, from context, deliveries) per row of the timeline."""
    rows = elements(response, "tr", class_="event")
    return [(text(row.children[2]), text(row.children[3]), _items(row.children[4])) for row in rows]


def live_attributes(response) -> dict[str, str]:
    """The attributes of the page's live part; the part alone (``live/``) is that element itself."""
    root = parse_html(response.content.decode())
    if root.name == "div" and ("id", "order-live") in root.attributes:
        return dict(root.attributes)
    return dict(element(response, "div", id="order-live").attributes)


def _items(cell) -> list[str]:
    [ul] = [c for c in cell.children if getattr(c, "name", "") == "ul"]
    return [text(li) for li in ul.children]


def ship(order: Order) -> Order:
    saga.on_payment_secured(order_id=order.id)
    saga.on_stock_secured(order_id=order.id)
    saga.on_shipment_arranged(
        order_id=order.id, carrier="Sandbox Post", tracking_number="SBX42", estimated_delivery=dt.date(2030, 5, 6)
    )
    order.refresh_from_db()
    return order


def test_a_customer_lists_their_own_orders_only(signed_in, alice, bob):
    # given
    mine = place_order(customer=alice)
    theirs = place_order(customer=bob)
    # when
    response = signed_in.get("/orders/")
    # then
    assert response.status_code == 200
    links = [dict(a.attributes)["href"] for a in elements(response, "a") if "/orders/" in dict(a.attributes)["href"]]
    assert page_url(mine) in links
    assert page_url(theirs) not in links


def test_a_draft_shows_its_state_lines_and_the_confirm_and_cancel_buttons(signed_in, alice):
    # given
    pen = make_product(price="1.20")
    order = place_order(customer=alice, lines=[(pen, 3)])
    # when
    response = signed_in.get(page_url(order))
    # then
    assert response.status_code == 200
    assert state(response) == {
        "Status": "Draft",
        "Payment": "not_requested",
        "Stock": "not_requested",
        "Shipment": "not yet",
        "Placed": f"{order.created_at:%Y-%m-%d %H:%M:%S} UTC",
    }
    assert text(element(response, "th", id="order-total")) == "3.60 EUR"
    assert element(response, "form", action=page_url(order, "confirm"))
    assert element(response, "form", action=page_url(order, "cancel"))
    assert timeline(response) == [("OrderPlaced", "orders", ["no handler"])]
    # a draft waits for its customer: nothing refreshes
    assert "data-refresh-url" not in dict(element(response, "div", id="order-live").attributes)
    assert b'http-equiv="refresh"' not in response.content
    assert elements(response, "span", class_="updating") == []


def test_an_order_in_flight_shows_the_timeline_with_who_handled_what_and_refreshes_itself(signed_in, alice):
    # given a confirmed order whose events the relay fanned out, and whose payment was secured
    order = place_order(customer=alice, confirm=True)
    fan_out(batch_size=100)
    saga.on_payment_secured(order_id=order.id)
    # when
    response = signed_in.get(page_url(order))
    # then
    assert state(response)["Status"] == "Confirmed"
    assert (state(response)["Payment"], state(response)["Stock"]) == ("authorised", "pending")
    rows = timeline(response)
    assert [row[0] for row in rows] == ["OrderPlaced", "OrderConfirmed"]
    handled_by = rows[1][2]
    assert "payments: payments.authorise_payment dispatched" in handled_by
    assert "inventory: inventory.reserve_stock dispatched" in handled_by
    # it refreshes itself: with a script, and without one
    live = dict(element(response, "div", id="order-live").attributes)
    assert live["data-refresh-url"] == page_url(order, "live")
    assert text(element(response, "span", class_="updating")) == "updating…"
    assert b'<noscript><meta http-equiv="refresh" content="2"></noscript>' in response.content
    # and the part it refreshes is served alone
    partial = signed_in.get(page_url(order, "live"))
    assert partial.status_code == 200
    assert partial.content.decode().lstrip().startswith('<div id="order-live"')
    assert state(partial) == state(response)


def test_a_shipped_order_shows_its_shipment_and_offers_no_buttons(signed_in, alice):
    # given
    order = ship(place_order(customer=alice, confirm=True))
    # when
    response = signed_in.get(page_url(order))
    # then
    shown = state(response)
    assert (shown["Status"], shown["Payment"], shown["Stock"]) == ("Shipped", "authorised", "reserved")
    assert shown["Shipment"] == "Sandbox Post, tracking number SBX42"
    assert "Estimated delivery 2030-05-06" in text(element(response, "table", id="order-state"))
    assert [row[0] for row in timeline(response)] == [
        "OrderPlaced",
        "OrderConfirmed",
        "OrderReadyToShip",
        "OrderShipped",
    ]
    assert elements(response, "form", action=page_url(order, "confirm")) == []
    assert elements(response, "form", action=page_url(order, "cancel")) == []


@pytest.mark.parametrize("final", ["shipped", "cancelled"])
@pytest.mark.parametrize("action", ["", "live"])
def test_a_final_order_stops_following_itself_though_its_follow_ups_still_run(signed_in, alice, final, action):
    # given an order shipped or cancelled, whose events the relay has not even fanned out yet
    order = place_order(customer=alice, confirm=True)
    if final == "shipped":
        ship(order)
    else:
        order_cancel(order_id=order.id, reason="changed my mind", by_user_id=alice.pk)
    # when the page, or the part of it a page still following fetches, is asked for
    response = signed_in.get(page_url(order, action))
    # then it carries nothing that polls, and no longer says it is updating
    assert response.status_code == 200
    assert "data-refresh-url" not in live_attributes(response)
    assert b"http-equiv" not in response.content
    assert elements(response, "span", class_="updating") == []
    assert "updating" not in response.content.decode()
    # but says that what follows (refund, release, mail) shows on reload
    assert "reload to see them" in response.content.decode()


def test_a_final_and_settled_order_says_nothing_more_will_happen(signed_in, alice):
    # given a shipped order all of whose events were fanned out and handled
    order = ship(place_order(customer=alice, confirm=True))
    fan_out(batch_size=100)
    Delivery.objects.filter(event__correlation_id=order.correlation_id).update(status=Delivery.Status.DONE)
    # when
    response = signed_in.get(page_url(order))
    # then
    assert "data-refresh-url" not in dict(element(response, "div", id="order-live").attributes)
    assert elements(response, "span", id="order-final") == []
    assert elements(response, "span", class_="updating") == []


def test_the_customer_confirms_a_draft(signed_in, alice):
    # given
    order = place_order(customer=alice)
    # when
    response = signed_in.post(page_url(order, "confirm"))
    # then
    assert response.status_code == 302
    assert response["Location"] == page_url(order)
    order.refresh_from_db()
    assert order.status == "confirmed"
    page = signed_in.get(page_url(order))
    assert "Confirmed. Payment and stock are being secured" in text(element(page, "ul", class_="messages"))
    assert elements(page, "form", action=page_url(order, "confirm")) == []


def test_confirming_again_is_harmless(signed_in, alice):
    # given a confirmed order (a double click, or the form sent again from the browser's history)
    order = place_order(customer=alice, confirm=True)
    # when
    page = signed_in.post(page_url(order, "confirm"), follow=True)
    # then
    assert "Confirmed. Payment and stock are being secured" in text(element(page, "ul", class_="messages"))
    assert state(page)["Status"] == "Confirmed"
    assert [row[0] for row in timeline(page)] == ["OrderPlaced", "OrderConfirmed"]


def test_confirming_an_order_that_has_shipped_since_says_so(signed_in, alice):
    order = ship(place_order(customer=alice, confirm=True))
    page = signed_in.post(page_url(order, "confirm"), follow=True)
    assert "This order was confirmed already: it is shipped now." in text(element(page, "ul", class_="messages"))
    order.refresh_from_db()
    assert order.status == "shipped"


def test_confirming_a_cancelled_draft_says_why_not(signed_in, alice):
    order = place_order(customer=alice)
    order_cancel(order_id=order.id, reason="Not now.", by_user_id=order.customer_id)
    page = signed_in.post(page_url(order, "confirm"), follow=True)
    assert f"Order {order.id} is cancelled: it cannot be confirmed. Only a draft order can be confirmed." in text(
        element(page, "ul", class_="messages")
    )


def test_the_customer_cancels_with_a_reason(signed_in, alice):
    # given
    order = place_order(customer=alice, confirm=True)
    # when
    response = signed_in.post(page_url(order, "cancel"), {"reason": "Ordered by mistake."})
    # then
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.cancel_code, order.cancel_reason) == ("cancelled", "customer", "Ordered by mistake.")
    page = signed_in.get(page_url(order))
    assert state(page)["Cancelled"] == "Ordered by mistake."
    assert elements(page, "form", action=page_url(order, "cancel")) == []


def test_a_cancellation_without_a_reason_shows_the_error_beside_the_field(signed_in, alice):
    order = place_order(customer=alice)
    response = signed_in.post(page_url(order, "cancel"), {"reason": "  "})
    assert response.status_code == 400
    assert errors_in(field_block(response, "reason")) == ["This field is required."]
    order.refresh_from_db()
    assert order.status == "draft"


def test_cancelling_a_shipped_order_says_why_not(signed_in, alice):
    order = ship(place_order(customer=alice, confirm=True))
    page = signed_in.post(page_url(order, "cancel"), {"reason": "Too late."}, follow=True)
    assert f"Order {order.id} is shipped: it cannot be cancelled." in text(element(page, "ul", class_="messages"))
    order.refresh_from_db()
    assert order.status == "shipped"


@pytest.mark.parametrize(("method", "action"), [("get", ""), ("get", "live"), ("post", "confirm"), ("post", "cancel")])
def test_another_customer_gets_404_and_changes_nothing(alice, bob, method, action):
    # given alice's draft, and bob signed in
    order = place_order(customer=alice)
    client = Client()
    client.force_login(bob)
    # when
    response = getattr(client, method)(page_url(order, action), {"reason": "mischief"} if method == "post" else {})
    # then
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == "draft"


@pytest.mark.parametrize(("method", "action"), [("get", ""), ("post", "confirm"), ("post", "cancel")])
def test_a_visitor_is_sent_to_sign_in(alice, method, action):
    order = place_order(customer=alice)
    response = getattr(Client(), method)(page_url(order, action))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    order.refresh_from_db()
    assert order.status == "draft"


@pytest.mark.parametrize("action", ["confirm", "cancel"])
def test_confirm_and_cancel_refuse_a_post_without_its_csrf_token(alice, action):
    # given a CSRF-enforcing client, signed in as the order's customer
    order = place_order(customer=alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    # when
    response = client.post(page_url(order, action), {"reason": "forged"})
    # then
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == "draft"


def test_confirm_is_a_post_only(signed_in, alice):
    order = place_order(customer=alice)
    assert signed_in.get(page_url(order, "confirm")).status_code == 405
    order.refresh_from_db()
    assert order.status == "draft"
