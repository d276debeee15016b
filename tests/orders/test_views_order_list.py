"""'Your orders' (/orders/): the customer's own orders, newest first, a page at a time; any ?page= is a page."""

import pytest
from django.test import Client

from orders.views import ORDERS_PER_PAGE
from tests.factories import make_product, place_order
from tests.support.html import element, elements, text
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


def listed(response) -> list[str]:
    """The ids of the orders on the page, top to bottom."""
    return [text(row.children[0]) for row in element(response, "table", id="orders").children[1].children]


@pytest.fixture
def orders(alice) -> list[str]:
    """One more of alice's orders than a page holds, newest first."""
    pen = make_product()
    placed = [place_order(customer=alice, lines=[(pen, 1)]) for _ in range(ORDERS_PER_PAGE + 1)]
    return [str(order.id) for order in reversed(placed)]


def test_the_first_page_holds_the_newest_orders_and_links_to_the_next(signed_in, orders):
    response = signed_in.get("/orders/")
    assert response.status_code == 200
    assert listed(response) == orders[:ORDERS_PER_PAGE]
    assert text(element(response, "span", class_="current")) == (f"Page 1 of 2 ({ORDERS_PER_PAGE + 1} orders)")
    assert dict(element(response, "a", rel="next").attributes)["href"] == "?page=2"
    assert elements(response, "a", rel="prev") == []


def test_the_second_page_holds_the_oldest_and_links_back(signed_in, orders):
    response = signed_in.get("/orders/", {"page": "2"})
    assert response.status_code == 200
    assert listed(response) == orders[ORDERS_PER_PAGE:]
    assert dict(element(response, "a", rel="prev").attributes)["href"] == "?page=1"
    assert elements(response, "a", rel="next") == []


@pytest.mark.parametrize(
    ("page", "shown"),
    [
        pytest.param("abc", 1, id="not-a-number"),
        pytest.param("", 1, id="blank"),
        pytest.param("1.5", 1, id="a-fraction"),
        pytest.param("9" * 5000, 1, id="5000-digits"),
        pytest.param("99", 2, id="past-the-end"),
        pytest.param("0", 2, id="zero"),
        pytest.param("-1", 2, id="negative"),
    ],
)
def test_any_other_page_is_answered_with_a_page_never_an_error(signed_in, orders, page, shown):
    response = signed_in.get("/orders/", {"page": page})
    assert response.status_code == 200
    assert text(element(response, "span", class_="current")).startswith(f"Page {shown} of 2")


def test_one_page_of_orders_shows_no_page_links(signed_in, alice):
    place_order(customer=alice)
    response = signed_in.get("/orders/")
    assert len(listed(response)) == 1
    assert elements(response, "nav", class_="pagination") == []


def test_staff_who_may_see_every_order_still_list_only_their_own_here(alice):
    place_order(customer=alice)
    viewer = make_user("vic", staff=True, perms=("orders.view_order",))
    own = place_order(customer=viewer)
    client = Client()
    client.force_login(viewer)
    assert listed(client.get("/orders/")) == [str(own.id)]
