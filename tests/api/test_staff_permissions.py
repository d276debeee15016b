"""Over REST, staff status alone grants nothing: each route asks for the model permission the admin asks for.

Another customer's order is read with ``orders.view_order`` and cancelled with
``orders.change_order``; dead letters are read with ``outbox.view_delivery``,
the event log with ``outbox.view_outboxevent`` and stock levels with
``inventory.view_stockitem``. Staff without them are customers: their own
orders only (another's is a 404) and a 403 naming the permission elsewhere.
"""

import pytest
from django.contrib.auth.models import Group

from tests.factories import make_product, place_order
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/orders/"
DEAD_LETTERS_URL = "/api/outbox/dead-letters/"
GROUPS_URL = "/api/outbox/dead-letter-groups/"
EVENTS_URL = "/api/events/"

# Each route for staff alone: what it answers someone without its permission.
STAFF_ROUTES = [
    pytest.param(
        DEAD_LETTERS_URL, "Reading dead letters needs the outbox.view_delivery permission.", id="dead-letters"
    ),
    pytest.param(GROUPS_URL, "Reading dead letters needs the outbox.view_delivery permission.", id="groups"),
    pytest.param(EVENTS_URL, "Searching the event log needs the outbox.view_outboxevent permission.", id="events"),
    pytest.param(
        "/api/inventory/{sku}/", "Reading stock levels needs the inventory.view_stockitem permission.", id="stock"
    ),
]


def order_url(order, action: str = "") -> str:
    return f"{ORDERS_URL}{order.id}/{action + '/' if action else ''}"


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bare_staff(db):
    """Staff status, and not one permission."""
    return make_user("stu", staff=True)


# staff without permissions: a customer


def test_staff_without_orders_view_order_list_only_their_own_orders(alice, bare_staff):
    place_order(customer=alice)
    own = place_order(customer=bare_staff)
    response = token_client(bare_staff).get(ORDERS_URL)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(own.id)]


@pytest.mark.parametrize("action", ["", "events"])
def test_staff_without_orders_view_order_are_told_anothers_order_does_not_exist(alice, bare_staff, action):
    order = place_order(customer=alice)
    response = token_client(bare_staff).get(order_url(order, action))
    assert response.status_code == 404
    assert response.json() == {"detail": f"You have no order {order.id}.", "code": "not_found"}


def test_staff_without_permissions_cannot_cancel_anothers_order(alice, bare_staff):
    order = place_order(customer=alice, confirm=True)
    response = token_client(bare_staff).post(order_url(order, "cancel"), {"reason": "Fraud check."}, format="json")
    assert response.status_code == 404
    order.refresh_from_db()
    assert order.status == "confirmed"


@pytest.mark.parametrize(("url", "message"), STAFF_ROUTES)
def test_staff_without_the_permission_get_403_naming_it(bare_staff, url, message):
    response = token_client(bare_staff).get(url.format(sku=make_product().sku))
    assert response.status_code == 403
    assert response.json() == {"detail": message, "code": "permission_denied"}


# with the permission


def test_orders_view_order_reads_any_order_but_does_not_cancel_it(alice):
    # given staff who may view orders, not change them
    order = place_order(customer=alice, confirm=True)
    viewer = make_user("vic", staff=True, perms=("orders.view_order",))
    client = token_client(viewer)
    # when / then: they read it, its events, and the list
    assert client.get(order_url(order)).json()["customer"] == "alice"
    assert client.get(order_url(order, "events")).status_code == 200
    assert str(order.id) in {row["id"] for row in client.get(ORDERS_URL).json()["results"]}
    # and a cancellation is refused, naming the permission, and changes nothing
    response = client.post(order_url(order, "cancel"), {"reason": "Fraud check."}, format="json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Cancelling another customer's order needs the orders.change_order permission.",
        "code": "permission_denied",
    }
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_staff_cancel_their_own_order_without_any_permission(bare_staff):
    order = place_order(customer=bare_staff)
    response = token_client(bare_staff).post(order_url(order, "cancel"), {"reason": "Changed my mind."}, format="json")
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.status, order.cancel_code) == ("cancelled", "customer")


@pytest.mark.parametrize(
    ("url", "perm"),
    [
        pytest.param(DEAD_LETTERS_URL, "outbox.view_delivery", id="dead-letters"),
        pytest.param(DEAD_LETTERS_URL, "outbox.retry_delivery", id="dead-letters-to-retry"),
        pytest.param(GROUPS_URL, "outbox.view_delivery", id="groups"),
        pytest.param(EVENTS_URL, "outbox.view_outboxevent", id="events"),
        pytest.param("/api/inventory/{sku}/", "inventory.view_stockitem", id="stock"),
    ],
)
def test_the_permission_alone_opens_the_route_staff_or_not(url, perm):
    """The permission is what counts: it opens the route to a user who is not even staff."""
    holder = make_user("holder", perms=(perm,))
    assert token_client(holder).get(url.format(sku=make_product().sku)).status_code == 200


# a superuser holds every permission


def test_a_superuser_reads_and_cancels_any_order_and_reads_every_staff_route(alice):
    root = make_user("root", staff=True, is_superuser=True)
    client = token_client(root)
    order = place_order(customer=alice, confirm=True)
    assert client.get(order_url(order)).status_code == 200
    assert str(order.id) in {row["id"] for row in client.get(ORDERS_URL).json()["results"]}
    response = client.post(order_url(order, "cancel"), {"reason": "Fraud check."}, format="json")
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.status, order.cancel_code) == ("cancelled", "staff")
    sku = make_product().sku
    for url in (DEAD_LETTERS_URL, GROUPS_URL, EVENTS_URL, f"/api/inventory/{sku}/"):
        assert client.get(url).status_code == 200, url


# the Support group


def test_a_member_of_support_reads_and_cancels_orders_and_reads_dead_letters_but_not_the_log_or_stock(alice):
    # given staff in the Support group that migrate creates, and nothing else
    member = make_user("sue", staff=True)
    member.groups.add(Group.objects.get(name="Support"))
    client = token_client(member)
    order = place_order(customer=alice, confirm=True)
    # then
    assert client.get(order_url(order)).status_code == 200
    assert client.get(DEAD_LETTERS_URL).status_code == 200
    assert client.get(GROUPS_URL).status_code == 200
    assert client.get(EVENTS_URL).status_code == 403
    assert client.get(f"/api/inventory/{make_product().sku}/").status_code == 403
    response = client.post(order_url(order, "cancel"), {"reason": "Customer phoned."}, format="json")
    assert response.status_code == 200
    order.refresh_from_db()
    assert (order.status, order.cancel_code) == ("cancelled", "staff")
