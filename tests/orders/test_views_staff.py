"""On the shop's pages, staff see another customer's order with ``orders.view_order`` and cancel it with
``orders.change_order``; staff status alone makes them a customer (another's order is a 404)."""

import pytest
from django.test import Client

from orders.models import Order
from tests.factories import place_order
from tests.support.html import elements
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


def page_url(order: Order, action: str = "") -> str:
    return f"/orders/{order.id}/{action + '/' if action else ''}"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def cancel_forms(response, order: Order) -> list:
    return elements(response, "form", action=page_url(order, "cancel"))


@pytest.mark.parametrize(("method", "action"), [("get", ""), ("get", "live"), ("post", "cancel")])
def test_staff_without_permissions_get_404_for_anothers_order_and_change_nothing(alice, method, action):
    order = place_order(customer=alice, confirm=True)
    client = signed_in(make_user("stu", staff=True))
    response = getattr(client, method)(page_url(order, action), {"reason": "Fraud."} if method == "post" else {})
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_staff_with_orders_view_order_see_the_order_without_a_cancel_button_and_cannot_cancel(alice):
    # given
    order = place_order(customer=alice, confirm=True)
    client = signed_in(make_user("vic", staff=True, perms=("orders.view_order",)))
    # when
    page = client.get(page_url(order))
    refused = client.post(page_url(order, "cancel"), {"reason": "Fraud."})
    # then
    assert page.status_code == 200
    assert cancel_forms(page, order) == []
    assert refused.status_code == 403
    order.refresh_from_db()
    assert order.status == "confirmed"


@pytest.mark.parametrize(
    "user",
    [
        pytest.param({"perms": ("orders.change_order",)}, id="orders.change_order"),
        pytest.param({"is_superuser": True}, id="superuser"),
    ],
)
def test_staff_who_may_change_orders_see_the_cancel_button_and_cancel_as_staff(alice, user):
    # given
    order = place_order(customer=alice, confirm=True)
    client = signed_in(make_user("cass", staff=True, **user))
    # when
    page = client.get(page_url(order))
    response = client.post(page_url(order, "cancel"), {"reason": "Fraud check."})
    # then
    assert page.status_code == 200
    assert len(cancel_forms(page, order)) == 1
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.cancel_code, order.cancel_reason) == ("cancelled", "staff", "Fraud check.")
