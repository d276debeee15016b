"""A customer orders two products in the shop, confirms, and watches the order ship, in a real browser.

Against gunicorn on the test database and a real relay and worker: the page
is never reloaded by the test after the confirmation; it follows the order
on its own.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from orders.models import Order
from tests.factories import make_product
from tests.support.users import PASSWORD, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.workers]

ORDER_PAGE = re.compile(r"/orders/[0-9a-f-]{36}/$")
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
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Products")).to_be_visible()


def test_a_customer_places_confirms_and_watches_a_two_line_order_ship(page: Page, live_outbox, screenshot):
    # given two products in stock, and a customer
    mug = make_product(price="12.90", on_hand=20)
    lamp = make_product(price="39.00", on_hand=5)
    make_user("carol", email="carol@customers.example")

    # when she signs in, she sees the products with their prices and availability
    sign_in(page, "carol")
    expect(page.locator("#products tr", has_text=mug.sku)).to_contain_text("12.90 EUR")
    expect(page.locator("#products tr", has_text=lamp.sku)).to_contain_text("5")

    # when she orders three mugs and a lamp through the form
    page.locator("#products tr", has_text=mug.sku).get_by_role("link", name="Order").click()
    expect(page.get_by_label("Product of line 1")).to_have_value(mug.sku)
    page.get_by_label("Quantity of line 1").fill("3")
    page.get_by_label("Product of line 2").select_option(lamp.sku)
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

    # then the page follows the order on its own until it has shipped, and is settled
    expect(page.locator("#order-status")).to_have_text("Shipped", timeout=60_000)
    expect(page.locator("#order-live")).to_have_attribute("data-settled", "true", timeout=60_000)
    expect(page.locator("#payment-status")).to_have_text("authorised")
    expect(page.locator("#stock-status")).to_have_text("shipped")
    order.refresh_from_db()
    expect(page.locator("#shipment")).to_contain_text(order.tracking_number)

    # and the timeline lists the events of its life in causal order, each from its context
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
    # and no button is left to press
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)
    assert order.status == "shipped", live_outbox.logs()
