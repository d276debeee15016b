"""A visitor browses the shop, signs in to order two products, confirms, and watches the order ship, in a real browser.

Against gunicorn on the test database and a real relay and worker: the page
is not reloaded by the test after the confirmation; it follows the order on
its own until the order is final, then stops. The test takes the README's
pictures of the shop, the order page and the admin's order page.
"""

import re

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from inventory.demo import seed_catalogue
from orders.models import Order
from orders.selectors import order_is_settled
from orders.views import REFRESH_SECONDS
from tests.e2e.conftest import DESKTOP, hide_admin_sidebar, readme_screenshot, sign_in_to_admin
from tests.support.processes import wait_for
from tests.support.users import PASSWORD, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.workers]

ORDER_PAGE = re.compile(r"/orders/[0-9a-f-]{36}/$")
LIVE_PART = re.compile(r"/orders/[0-9a-f-]{36}/live/$")
PHONE = {"width": 390, "height": 844}
# The events of a shipped order's life, as its timeline names them (each with the context that published it).
# An order's life in causal order. Payment and stock are secured in parallel,
# so those two may be listed either way round.
LIFE = [
    ("OrderPlaced", "orders"),
    ("OrderConfirmed", "orders"),
    {("PaymentProcessed", "payments"), ("InventoryReserved", "inventory")},
    ("OrderReadyToShip", "orders"),
    ("ShippingArranged", "shipping"),
    ("OrderShipped", "orders"),
]
MILESTONES = {step for entry in LIFE for step in (entry if isinstance(entry, set) else {entry})}


def in_causal_order(listed: list[tuple[str, str]]) -> bool:
    """The milestones of ``listed``, grouped as LIFE groups them, are LIFE."""
    steps = iter([entry for entry in listed if entry in MILESTONES])
    for expected in LIFE:
        group = expected if isinstance(expected, set) else {expected}
        if {next(steps, None) for _ in group} != group:
            return False
    return next(steps, None) is None


def sign_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def fits_a_phone(page: Page, screenshot, label: str) -> bool:
    """At a phone's width, the page is no wider than the screen (wide tables scroll in their own box)."""
    page.set_viewport_size(PHONE)
    try:
        screenshot(page, f"{label}-on-a-phone")
        return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        page.set_viewport_size(DESKTOP)


def test_a_visitor_browses_then_signs_in_orders_two_products_and_watches_them_ship(
    page: Page, new_context, live_outbox, screenshot
):
    # given the demo catalogue, and a customer
    seed_catalogue()
    make_user("carol", email="carol@customers.example")

    # when a visitor who has not signed in opens the shop, she sees the products with their prices and availability
    page.goto("/")
    expect(page.get_by_role("heading", name="Products")).to_be_visible()
    mug = page.locator("#products tr", has_text="MUG-CERAMIC")
    expect(mug).to_contain_text("Ceramic mug, 350 ml")
    expect(mug).to_contain_text("12.90 EUR")
    expect(page.locator("#products tr", has_text="LAPTOP-14")).to_contain_text("5")
    # styled by the shop's own stylesheet, and readable on a phone
    expect(page.locator(".site-header")).to_have_css("background-color", "rgb(31, 35, 40)")
    assert fits_a_phone(page, screenshot, "shop")
    readme_screenshot(page, "shop")

    # when she orders mugs, she is asked to sign in first, and comes back to the order form for them
    mug.get_by_role("link", name="Order").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, "carol")
    expect(page.get_by_label("Product of line 1")).to_have_value("MUG-CERAMIC")

    # when she orders three mugs and a lamp through the form
    page.get_by_label("Quantity of line 1").fill("3")
    page.get_by_label("Product of line 2").select_option("LAMP-DESK")
    page.get_by_label("Name:", exact=True).fill("Carol Customer")
    page.get_by_label("Address line 1").fill("7 Market Street")
    page.get_by_label("City").fill("Leeds")
    page.get_by_label("Postal code").fill("LS1 6DT")
    page.get_by_label("Country").fill("gb")
    expect(page.get_by_label("Payment token")).to_have_value("tok_visa")
    screenshot(page, "order-form")
    page.get_by_role("button", name="Place order").click()

    # then she is on the draft's page
    page.wait_for_url(ORDER_PAGE)
    order = Order.objects.get(customer__username="carol")
    expect(page.locator("#order-status")).to_have_text("Draft")
    expect(page.locator("#order-total")).to_have_text("77.70 EUR")

    # when she confirms it
    page.get_by_role("button", name="Confirm order").click()

    # then the page follows the order on its own until it has shipped
    expect(page.locator("#order-status")).to_have_text("Shipped", timeout=60_000)
    expect(page.locator("#payment-status")).to_have_text("authorised")
    expect(page.locator("#stock-status")).to_have_text("shipped")
    order.refresh_from_db()
    expect(page.locator("#shipment")).to_contain_text(order.tracking_number)
    # and then stops: it no longer says it is updating, and asks the server no more
    expect(page.locator("#order-live")).not_to_have_attribute("data-refresh-url", re.compile(".*"))
    expect(page.locator(".updating")).to_have_count(0)
    with pytest.raises(PlaywrightTimeoutError), page.expect_request(LIVE_PART, timeout=3 * REFRESH_SECONDS * 1000):
        pass  # (three times the polling interval, and not one fetch of the live part)
    # and no button is left to press
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    assert order.status == "shipped", live_outbox.logs()

    # when everything that follows the shipment has run too, and she reloads the page
    wait_for(lambda: order_is_settled(order=order), timeout=60, what=live_outbox.logs)
    page.reload()
    # then the timeline lists the events of its life in causal order, each from its context
    rows = page.locator("#timeline tr.event")
    listed = [
        (row.locator("td").nth(2).locator("b").inner_text(), row.locator("td").nth(3).inner_text())
        for row in rows.all()
    ]
    assert in_causal_order(listed), listed
    # with which handlers handled each, all done
    confirmed = page.locator("#timeline tr.event[data-type='orders.OrderConfirmed']")
    expect(confirmed).to_contain_text("payments: payments.authorise_payment done")
    expect(confirmed).to_contain_text("inventory: inventory.reserve_stock done")
    expect(page.locator("#timeline .deliveries li:not(.done):not(.help)")).to_have_count(0)
    expect(page.locator("#order-final")).to_have_count(0)
    assert fits_a_phone(page, screenshot, "order")
    readme_screenshot(page, "order")

    # when a member of staff who may view orders opens it in the admin
    make_user("olga", staff=True, perms=("orders.view_order",))
    admin = new_context().new_page()
    sign_in_to_admin(admin, "olga", PASSWORD)
    admin.goto(f"/admin/orders/order/{order.pk}/change/")
    # then the timeline is a table whose deliveries are listed, with no markup shown as text
    timeline = admin.locator("table.order-timeline")
    expect(timeline.locator("tbody tr")).to_have_count(len(listed))
    expect(timeline.locator("ul.deliveries li").first).to_be_visible()
    expect(timeline).not_to_contain_text("<br>")
    # and the address is its lines
    expect(admin.locator("address.shipping-address .line")).to_have_text(
        ["Carol Customer", "7 Market Street", "LS1 6DT Leeds", "GB"]
    )
    hide_admin_sidebar(admin)
    readme_screenshot(admin, "admin-order")
