"""The orders admin: the changelist (filters, search), an order's page with its event timeline and deliveries
and the order as of a time, the cancel action, the saga instances; and an admin for every context."""

import datetime as dt
import uuid
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from orders import saga
from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.factories import make_product, place_order
from tests.outbox.probe.events import Stepped
from tests.support.users import make_user

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


def test_the_orders_page_shows_each_events_deliveries_and_the_state_of_payment_and_stock(admin_client):
    # given a confirmed order whose events the relay has fanned out to their handlers
    order = place_order(confirm=True)
    fan_out(batch_size=100)
    confirmed = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    authorise = Delivery.objects.get(event=confirmed, handler="payments.authorise_payment")
    # when
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    # then every delivery of the event is listed with its status, linked to its own page
    delivery_url = reverse("admin:outbox_delivery_change", args=[authorise.pk])
    # (sent, and no handler has started it yet: no attempt)
    assert f'<a href="{delivery_url}">payments.authorise_payment</a>: dispatched (0 attempts)' in page
    assert "inventory.reserve_stock" in page
    assert reverse("admin:outbox_outboxevent_change", args=[confirmed.pk]) in page
    assert '<div class="readonly">pending</div>' in page  # payment and stock, not yet answered
    # and nothing on it can be edited
    assert 'name="_save"' not in page


def test_the_timeline_is_a_table_of_real_markup_and_the_address_is_its_lines(admin_client):
    # given a confirmed order, fanned out: its OrderConfirmed went to several handlers
    order = place_order(confirm=True)
    fan_out(batch_size=100)
    # when
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    # then no markup of the timeline shows as text (the deliveries were once joined by an escaped "<br>")
    assert "&lt;" not in page.split('<table class="order-timeline">', 1)[1].split("</table>", 1)[0]
    assert "&lt;br&gt;" not in page
    # (OrderPlaced has no handler; OrderConfirmed's deliveries are the first list, an item each)
    confirmed = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    deliveries = page.split('<ul class="deliveries">', 1)[1].split("</ul>", 1)[0]
    assert deliveries.count('<li class="dispatched">') == Delivery.objects.filter(event=confirmed).count() > 1
    # and the address is its lines, not the stored JSON
    assert (
        '<address class="shipping-address"><span class="line">Ada Lovelace</span>'
        '<span class="line">12 St James&#x27;s Square</span>'
    ) in page
    assert '<span class="line">SW1Y 4JH London</span><span class="line">GB</span></address>' in page
    assert '"line1"' not in page
    assert "&quot;line1&quot;" not in page


def test_the_address_lines_are_escaped(admin_client):
    # given an address whose name holds markup
    order = place_order()
    Order.objects.filter(pk=order.pk).update(shipping_address={**order.shipping_address, "name": "<b>Eve</b>"})
    # when
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    # then it shows as text
    assert '<span class="line">&lt;b&gt;Eve&lt;/b&gt;</span>' in page
    assert "<b>Eve</b>" not in page


def test_the_timeline_says_what_a_held_delivery_of_an_ordered_handler_waits_for(admin_client):
    # given an order whose workflow has three steps for an ordered handler, the first dead, the second running
    order = place_order()
    thing = uuid.uuid4()
    with transaction.atomic():
        steps = [publish(Stepped(thing_id=thing, seq=n), correlation_id=order.correlation_id) for n in (1, 2, 3)]
    fan_out(batch_size=100)
    first, second, _ = (Delivery.objects.get(event=step) for step in steps)
    Delivery.objects.filter(id=first.id).update(status="dead", resolved_at=timezone.now())  # discarded
    Delivery.objects.filter(id=second.id).update(status="dead")
    # when
    page = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    # then the third names the dead second as what holds it; the others wait for nothing
    link = f'<a href="{reverse("admin:outbox_delivery_change", args=[second.pk])}">#{second.pk}</a>'
    assert f"probe.record_step</a>: pending (0 attempts), held by {link} (dead)" in page
    assert page.count("held by") == 1


@pytest.mark.parametrize(
    ("term", "found"), [("alice", True), ("ALICE@shop.example", True), ("bob", False), ("not-a-uuid", False)]
)
def test_orders_are_found_by_customer(admin_client, term, found):
    order = place_order(customer=make_user("alice", email="alice@shop.example"))
    listing = admin_client.get(reverse("admin:orders_order_changelist"), {"q": term})
    assert listing.status_code == 200
    assert (str(order.pk) in listing.content.decode()) is found


def test_an_order_is_found_by_its_id(admin_client):
    wanted, other = place_order(), place_order()
    listing = admin_client.get(reverse("admin:orders_order_changelist"), {"q": str(wanted.pk)})
    html = listing.content.decode()
    assert str(wanted.pk) in html
    assert str(other.pk) not in html


def test_orders_are_filtered_by_date(admin_client):
    # given an order placed today and one placed last year
    today, old = place_order(), place_order()
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=400))
    # when
    listing = admin_client.get(reverse("admin:orders_order_changelist"), {"created_at__year": timezone.now().year})
    # then
    html = listing.content.decode()
    assert str(today.pk) in html
    assert str(old.pk) not in html


def test_the_cancel_action_needs_the_permission_to_change_orders(client):
    # given staff who may view orders but not change them
    viewer = make_user("vic", staff=True, perms=("orders.view_order",))
    order = place_order(confirm=True)
    client.force_login(viewer)
    # when
    listing = client.get(reverse("admin:orders_order_changelist"))
    response = client.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_orders", "_selected_action": [order.pk]}
    )
    # then the action is not offered, and posting it changes nothing
    assert listing.status_code == 200
    assert "cancel_orders" not in listing.content.decode()
    assert response.status_code in (200, 302)
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_the_cancel_action_reports_how_many_it_cancelled(admin_client):
    orders = [place_order(), place_order(confirm=True)]
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_orders", "_selected_action": [o.pk for o in orders]},
        follow=True,
    )
    assert "2 orders cancelled." in response.content.decode()
    assert set(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("cancel_code", flat=True)) == {"staff"}


def test_saga_instances_have_their_own_read_only_admin(admin_client):
    # given an order whose saga has learnt that the payment is secured
    order = place_order(confirm=True)
    saga.on_payment_secured(order_id=order.id)
    # when
    listing = admin_client.get(reverse("admin:orders_ordersaga_changelist"), {"payment__exact": "secured"})
    page = admin_client.get(reverse("admin:orders_ordersaga_change", args=[order.pk]))
    # then
    assert listing.status_code == page.status_code == 200
    assert str(order.pk) in listing.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:orders_ordersaga_add")).status_code == 403


@pytest.mark.parametrize(
    "changelist",
    [
        "admin:payments_payment_changelist",
        "admin:inventory_stockitem_changelist",
        "admin:shipping_shipment_changelist",
        "admin:notifications_notification_changelist",
        "admin:orders_ordersaga_changelist",
        "admin:outbox_deadletter_changelist",
    ],
)
def test_every_context_has_an_admin(admin_client, changelist):
    assert admin_client.get(reverse(changelist)).status_code == 200


# the order as of a time


def _as_of_panel(page: str) -> str:
    start = page.index('<div class="module" id="order-as-of">')
    return page[start : page.index("</div>\n", page.index("</form>", start))]


def test_staff_see_an_order_as_it_was_at_a_time_they_pick(admin_client):
    # given an order confirmed, then cancelled by staff
    order = place_order(confirm=True)
    action = admin_client.post(
        reverse("admin:orders_order_changelist"), {"action": "cancel_orders", "_selected_action": [order.pk]}
    )
    assert action.status_code == 302
    order.refresh_from_db()
    url = reverse("admin:orders_order_change", args=[order.pk])
    # when staff ask for it as of its confirmation, and as of its cancellation (in another offset)
    confirmed = admin_client.get(url, {"as_of": order.confirmed_at.isoformat()}).content.decode()
    paris = dt.timezone(dt.timedelta(hours=1))
    cancelled = admin_client.get(url, {"as_of": order.cancelled_at.astimezone(paris).isoformat()}).content.decode()
    # then each page has a read-only panel of the order as it was then, above the order as it is
    assert '<td class="as-of-status">confirmed</td>' in _as_of_panel(confirmed)
    assert '<td class="as-of-payment">pending</td>' in _as_of_panel(confirmed)
    assert f"As of {order.confirmed_at:%Y-%m-%d %H:%M:%S.%f} UTC" in _as_of_panel(confirmed)
    assert '<td class="as-of-status">cancelled</td>' in _as_of_panel(cancelled)
    assert "Cancelled by staff." in _as_of_panel(cancelled)
    assert '<div class="readonly">Cancelled</div>' in confirmed  # the order now, below
    assert 'name="_save"' not in confirmed


def test_the_timeline_links_each_event_to_the_order_as_of_it(admin_client):
    # given
    order = place_order(confirm=True)
    confirmation = OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")
    url = reverse("admin:orders_order_change", args=[order.pk])
    # when staff follow the confirmation's link
    page = admin_client.get(url).content.decode()
    link = "?" + urlencode({"as_of": confirmation.occurred_at.isoformat()})
    followed = admin_client.get(url + link).content.decode()
    # then
    assert f'<a href="{escape(link)}">as of this event</a>' in page
    assert '<td class="as-of-status">confirmed</td>' in _as_of_panel(followed)
    assert "rebuilt from 2 events" in _as_of_panel(followed)


def test_a_time_before_the_order_was_created_says_it_did_not_exist_yet(admin_client):
    order = place_order()
    url = reverse("admin:orders_order_change", args=[order.pk])
    page = admin_client.get(url, {"as_of": "2001-01-01 00:00:00"}).content.decode()
    panel = _as_of_panel(page)
    assert "This order did not exist yet at 2001-01-01 00:00:00.000000 UTC" in panel
    assert 'class="as-of-status"' not in panel


@pytest.mark.parametrize("as_of", ["yesterday", "2026-13-01 00:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_that_cannot_be_read_is_a_form_error_on_the_page(admin_client, as_of):
    # given
    order = place_order()
    # when
    response = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]), {"as_of": as_of})
    # then the page is there, with the error under the field and no panel of a state
    assert response.status_code == 200
    panel = _as_of_panel(response.content.decode())
    assert 'class="errorlist' in panel
    assert ("out of range" if as_of.startswith("0001") else "Give a date and time, e.g.") in panel
    assert 'class="as-of-status"' not in panel


def test_staff_who_may_not_view_orders_see_no_state_of_one(client):
    # given staff without the permission to view orders
    client.force_login(make_user("nosy", staff=True))
    order = place_order(confirm=True)
    # when
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]), {"as_of": "2030-01-01T00:00:00Z"})
    # then
    assert response.status_code == 403
    assert b"as-of-status" not in response.content


def test_a_history_holding_an_event_this_release_cannot_read_is_a_form_error_naming_it(admin_client):
    # given an order whose workflow holds an event in a version this code does not know
    order = place_order(confirm=True)
    unreadable = OutboxEvent.objects.create(
        type="payments.PaymentProcessed",
        version=99,
        occurred_at=timezone.now(),
        aggregate_type="payments.Payment",
        aggregate_id=str(order.id),
        correlation_id=order.correlation_id,
        payload={"shape": "of the future"},
    )
    # when staff ask for it as of now
    response = admin_client.get(reverse("admin:orders_order_change", args=[order.pk]), {"as_of": "2100-01-01 00:00"})
    # then the page is there, the error under the field names the event, and no state is shown
    assert response.status_code == 200
    panel = _as_of_panel(response.content.decode())
    assert f"event {unreadable.event_id} (payments.PaymentProcessed v99)" in panel
    assert 'class="as-of-status"' not in panel
