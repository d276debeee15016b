"""What each customer email says: an event, and what its order holds, in; a subject, a text and an HTML body out.

Each kind has three templates under ``templates/notifications/email/<kind>/``:
``subject.txt``, ``body.txt`` and ``body.html``. They are rendered in the
shop's language (``LANGUAGE_CODE``) by an engine of their own whose
``string_if_invalid`` raises: a template that prints a variable its context
lacks fails the handler (which the outbox retries and, in the end, shows as a
dead letter) instead of mailing a blank. ``{% if %}`` and ``{% for %}`` still
treat a missing variable as empty, so every context below names each of its
keys, empty or not.
"""

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parseaddr
from functools import cache
from pathlib import Path
from uuid import UUID

from django.conf import settings
from django.template import Engine
from django.urls import reverse
from django.utils import translation
from django_countries import countries

from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderShipped, ShippingAddress
from outbox.events import Money

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Message:
    subject: str
    body: str  # the text part
    html: str  # the HTML alternative


class MissingTemplateVariable(Exception):
    """A mail template printed a variable that its context does not have."""


class _FailOnMissing(str):
    """``string_if_invalid`` for the mail engine: Django formats it with the missing name, and that raises."""

    def __mod__(self, name: object) -> str:
        raise MissingTemplateVariable(f"the mail template variable {name} is not in its context")


@dataclass(frozen=True)
class Line:
    name: str
    sku: str
    quantity: int
    unit_price: Money
    total: Money


def order_confirmed(event: OrderConfirmed, *, confirmed_at: dt.datetime, lines: tuple[OrderLine, ...]) -> Message:
    """``lines``: the event's, or the order's when an old event (v1) carries none."""
    address = event.shipping_address
    return render(
        "order_confirmed",
        {
            **_order(event.order_id, lines, event.total),
            "confirmed_at": confirmed_at,
            "customer_name": address.name if address else "",
            "address_lines": _address_lines(address),
        },
    )


def order_cancelled(event: OrderCancelled, *, cancelled_at: dt.datetime, lines: tuple[OrderLine, ...]) -> Message:
    return render(
        "order_cancelled",
        {
            **_order(event.order_id, lines, event.total),
            "cancelled_at": cancelled_at,
            "reason": event.reason,
            "refund_due": event.refund_due,
        },
    )


def order_shipped(
    event: OrderShipped, *, shipped_at: dt.datetime, lines: tuple[OrderLine, ...], total: Money | None
) -> Message:
    return render(
        "order_shipped",
        {
            **_order(event.order_id, lines, total),
            "shipped_at": shipped_at,
            "carrier": event.carrier,
            "tracking_number": event.tracking_number,
            "estimated_delivery": event.estimated_delivery,
        },
    )


def render(kind: str, context: Mapping[str, object]) -> Message:
    """The three templates of ``kind`` rendered with ``context`` in the shop's language."""
    folder = f"notifications/email/{kind}"
    context = {"shop_name": _shop_name(), **context}
    with translation.override(settings.LANGUAGE_CODE):
        subject = _engine().render_to_string(f"{folder}/subject.txt", context)
        body = _engine().render_to_string(f"{folder}/body.txt", context)
        html = _engine().render_to_string(f"{folder}/body.html", context)
    return Message(subject=" ".join(subject.split()), body=_tidy(body), html=html.strip() + "\n")


def order_url(order_id: UUID) -> str:
    """The order's page in the shop, absolute: mail is rendered by workers, with no request to build it from."""
    return settings.SHOP_BASE_URL + reverse("orders:detail", kwargs={"order_id": order_id})


def message_id(*, kind: str, event_id: UUID, domain: str) -> str:
    """The one Message-ID of (event, kind): a message sent again is the same message to a mail system."""
    return f"<{kind}.{event_id}@{domain}>"


@cache
def _engine() -> Engine:
    return Engine(
        dirs=[TEMPLATES],  # type: ignore[list-item]  # Engine takes a path (the stubs say str)
        libraries={"i18n": "django.templatetags.i18n", "mail": "notifications.templatetags.mail"},
        string_if_invalid=_FailOnMissing("%s"),
    )


def _order(order_id: UUID, lines: tuple[OrderLine, ...], total: Money | None) -> dict[str, object]:
    return {
        "order_id": order_id,
        "order_reference": str(order_id)[:8],
        "order_url": order_url(order_id),
        "lines": [_line(line) for line in lines],
        "total": total,
    }


def _line(line: OrderLine) -> Line:
    price = line.unit_price
    total = Money(amount=price.amount * Decimal(line.quantity), currency=price.currency)
    return Line(name=line.name, sku=line.sku, quantity=line.quantity, unit_price=price, total=total)


def _address_lines(address: ShippingAddress | None) -> list[str]:
    """The delivery address as it is written on a parcel; none once the customer was forgotten."""
    if address is None or not address.line1:
        return []
    country = str(countries.name(address.country)) or address.country
    lines = [address.name, address.line1, address.line2, f"{address.postal_code} {address.city}", country]
    return [line for line in lines if line.strip()]


def _shop_name() -> str:
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return name or address


def _tidy(text: str) -> str:
    """A text body without the blank lines and trailing spaces that template tags leave behind."""
    lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
    return re.sub(r"\n{3,}", "\n\n", lines) + "\n"
