"""Every kind of customer mail rendered from its templates: subject, text body and HTML alternative, each with the
order's absolute link, its lines, money and dates formatted in the shop's language; a missing variable fails."""

import datetime as dt
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from notifications import messages
from notifications.models import Notification
from orders.events import ERASED_ADDRESS, OrderCancelled, OrderConfirmed, OrderLine, OrderShipped, ShippingAddress
from outbox.events import Money

EUR = "EUR"
ORDER_ID = uuid.UUID("3f2c8a51-6d0e-4b7a-9c1e-2a4b6c8d0e1f")
ORDER_URL = f"https://shop.example.com/orders/{ORDER_ID}/"
AT = dt.datetime(2030, 1, 7, 16, 30, tzinfo=dt.UTC)  # when the event occurred
LINES = (
    OrderLine(sku="MUG", name="Ceramic mug", quantity=2, unit_price=Money(amount=Decimal("12.90"), currency=EUR)),
    OrderLine(sku="LAMP", name="Desk lamp", quantity=1, unit_price=Money(amount=Decimal("1049.5"), currency=EUR)),
)
TOTAL = Money(amount=Decimal("1075.30"), currency=EUR)
ADDRESS = ShippingAddress(
    name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4LE", country="GB"
)
# The lines as the HTML table shows them: product (SKU), quantity, unit price, amount.
LINE_ROWS = [
    ["Ceramic mug (MUG)", "2", "12.90 EUR", "25.80 EUR"],
    ["Desk lamp (LAMP)", "1", "1,049.50 EUR", "1,049.50 EUR"],
]
LINE_TEXT = ["  2 x Ceramic mug (MUG) at 12.90 EUR: 25.80 EUR", "  1 x Desk lamp (LAMP) at 1,049.50 EUR: 1,049.50 EUR"]


@pytest.fixture(autouse=True)
def _shop(settings):
    settings.SHOP_BASE_URL = "https://shop.example.com"
    settings.DEFAULT_FROM_EMAIL = "Tea & Mugs <orders@shop.example>"
    settings.LANGUAGE_CODE = "en-us"


class ParsedHTML(HTMLParser):
    """An HTML body as a mail client reads it: its text, links, table rows, and whether every element is closed."""

    VOID = {"meta", "br", "img", "hr", "link", "input"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self.text_parts: list[str] = []
        self._href: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)
        self.close()
        assert self.open == [], f"unclosed elements: {self.open}"

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "a":
            self._href, self._link_text = dict(attrs)["href"], []
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        assert self.open[-1:] == [tag], f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()
        if tag == "a":
            self.links.append((self._href, " ".join("".join(self._link_text).split())))
            self._href = None
        if tag in ("td", "th"):
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        self.text_parts.append(data)
        if self._href is not None:
            self._link_text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())


@dataclass
class Expected:
    subject: str
    text: list[str]  # lines of the text body, in this order
    html: list[str]  # phrases of the HTML body's text
    rows: list[list[str]] = field(default_factory=list)  # the lines table, header and total included


def confirmed() -> messages.Message:
    event = OrderConfirmed(
        order_id=ORDER_ID, total=TOTAL, lines=LINES, customer_email="ada@example.com", shipping_address=ADDRESS
    )
    return messages.order_confirmed(event, confirmed_at=AT, lines=event.lines)


def cancelled() -> messages.Message:
    event = OrderCancelled(
        order_id=ORDER_ID,
        code="payment_failed",
        reason="Payment failed: card declined",
        refund_due=False,
        total=TOTAL,
        customer_email="ada@example.com",
    )
    return messages.order_cancelled(event, cancelled_at=AT, lines=LINES)


def shipped() -> messages.Message:
    event = OrderShipped(
        order_id=ORDER_ID,
        carrier="Sandbox Parcel",
        tracking_number="SBX000000000007",
        estimated_delivery=dt.date(2030, 1, 9),
        customer_email="ada@example.com",
    )
    return messages.order_shipped(event, shipped_at=AT, lines=LINES, total=TOTAL)


TABLE = [["Product", "Quantity", "Price", "Amount"], *LINE_ROWS, ["Total", "1,075.30 EUR"]]
KINDS = {
    "order_confirmed": (
        confirmed,
        Expected(
            subject="Your order 3f2c8a51 is confirmed",
            text=[
                "Hello Ada Lovelace,",
                f"Thank you for your order {ORDER_ID}, confirmed on Jan. 7, 2030.",
                *LINE_TEXT,
                "Total: 1,075.30 EUR",
                "Delivering to:",
                "  Ada Lovelace",
                "  12 St James's Square",
                "  SW1Y 4LE London",
                "  United Kingdom",
                f"Your order: {ORDER_URL}",
                "Tea & Mugs",
            ],
            html=[
                "Hello Ada Lovelace,",
                f"Thank you for your order {ORDER_ID}, confirmed on Jan. 7, 2030.",
                "Delivering to: Ada Lovelace 12 St James's Square SW1Y 4LE London United Kingdom",
            ],
            rows=TABLE,
        ),
    ),
    "order_cancelled": (
        cancelled,
        Expected(
            subject="Your order 3f2c8a51 is cancelled",
            text=[
                "Hello,",
                f"Your order {ORDER_ID} was cancelled on Jan. 7, 2030.",
                "Reason: Payment failed: card declined",
                "You have not been charged.",
                "The order was for:",
                *LINE_TEXT,
                "Total: 1,075.30 EUR",
                f"Your order: {ORDER_URL}",
            ],
            html=[f"Your order {ORDER_ID} was cancelled on Jan. 7, 2030.", "Reason: Payment failed: card declined"],
            rows=TABLE,
        ),
    ),
    "order_shipped": (
        shipped,
        Expected(
            subject="Your order 3f2c8a51 has shipped",
            text=[
                f"Your order {ORDER_ID} shipped on Jan. 7, 2030 with Sandbox Parcel.",
                "Tracking number: SBX000000000007",
                "Estimated delivery: Wednesday, Jan. 9, 2030",
                "In the parcel:",
                *LINE_TEXT,
                "Total: 1,075.30 EUR",
                f"Your order: {ORDER_URL}",
            ],
            html=["Tracking number: SBX000000000007 Estimated delivery: Wednesday, Jan. 9, 2030"],
            rows=TABLE,
        ),
    ),
}


def test_every_kind_of_notification_has_its_templates_tested():
    assert sorted(KINDS) == sorted(Notification.Kind.values)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_renders_its_subject_text_and_html_with_the_link_lines_money_and_dates(kind):
    # given
    render, expected = KINDS[kind]
    # when
    message = render()
    # then the subject is one line
    assert message.subject == expected.subject
    # the text body has each expected line, in order, and nothing unrendered
    lines = message.body.splitlines()
    positions = [lines.index(line) for line in expected.text]
    assert positions == sorted(positions), message.body
    assert "None" not in message.body
    assert "{" not in message.body
    # the HTML alternative parses, links to the order, and shows the same lines in a table
    html = ParsedHTML(message.html)
    assert html.links == [(ORDER_URL, "View your order")]
    for phrase in expected.html:
        assert phrase in html.text, html.text
    assert html.rows == expected.rows
    assert "None" not in html.text
    assert "{" not in html.text


def test_the_html_escapes_what_customers_and_staff_typed_and_the_text_keeps_it_as_typed():
    # given a product name and a cancel reason with markup in them
    line = LINES[0].model_copy(update={"name": "Mug <b>XL</b> & co"})
    event = OrderCancelled(
        order_id=ORDER_ID, code="staff", reason="<script>x</script>", refund_due=True, total=TOTAL, customer_email=""
    )
    # when
    message = messages.order_cancelled(event, cancelled_at=AT, lines=(line,))
    # then
    assert "<script>" not in message.html
    assert "&lt;script&gt;x&lt;/script&gt;" in message.html
    assert "Mug &lt;b&gt;XL&lt;/b&gt; &amp; co" in message.html
    assert "Reason: <script>x</script>" in message.body
    assert "2 x Mug <b>XL</b> & co (MUG)" in message.body
    assert "Any payment taken is being refunded." in message.body


def test_a_forgotten_customers_confirmation_greets_nobody_by_name_and_shows_no_address():
    event = OrderConfirmed(order_id=ORDER_ID, total=TOTAL, lines=LINES, shipping_address=ERASED_ADDRESS)
    message = messages.order_confirmed(event, confirmed_at=AT, lines=LINES)
    assert message.body.startswith("Hello,\n")
    assert "Delivering to" not in message.body
    assert "Delivering to" not in message.html


def test_money_and_dates_follow_the_shops_language(settings):
    # given a shop in German (no catalogue of ours: Django's own formats and month names)
    settings.LANGUAGE_CODE = "de"
    # when
    message = shipped()
    # then
    assert "12,90 EUR" in message.body
    assert "1.049,50 EUR" in message.body
    assert "Mittwoch, 9. Januar 2030" in message.body
    assert '<html lang="de">' in message.html


@pytest.mark.parametrize(
    "missing",
    [
        "tracking_number",  # inside {% blocktranslate %}
        "order_url",  # a plain {{ variable }}, in the text and the HTML
        "estimated_delivery",  # through a filter
    ],
)
def test_a_template_variable_missing_from_the_context_fails_loudly(missing):
    # given the shipped mail's full context but for one variable
    context = {
        "order_id": ORDER_ID,
        "order_reference": "3f2c8a51",
        "order_url": ORDER_URL,
        "lines": [],
        "total": TOTAL,
        "shipped_at": AT,
        "carrier": "Sandbox Parcel",
        "tracking_number": "SBX000000000007",
        "estimated_delivery": dt.date(2030, 1, 9),
    }
    assert messages.render("order_shipped", context).subject  # complete, it renders
    del context[missing]
    # when / then
    with pytest.raises(messages.MissingTemplateVariable, match=missing):
        messages.render("order_shipped", context)
