"""Customer emails, run in-process with Django's locmem email backend."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.core import mail

from notifications import handlers
from notifications.models import Notification
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderShipped
from outbox.events import Money
from tests.factories import envelope_for, handle

pytestmark = pytest.mark.django_db

EUR = "EUR"


def confirmed(email: str = "ada@example.com") -> OrderConfirmed:
    price = Money(amount=Decimal("12.90"), currency=EUR)
    return OrderConfirmed(
        order_id=uuid.uuid4(),
        total=Money(amount=Decimal("25.80"), currency=EUR),
        lines=(OrderLine(sku="MUG", name="Ceramic mug", quantity=2, unit_price=price),),
        customer_email=email,
    )


def test_a_confirmation_mail_lists_the_lines_and_total():
    # given
    event = confirmed()
    # when
    handle(handlers.mail_order_confirmed, event)
    # then
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "confirmed" in message.subject
    assert "2 x Ceramic mug (MUG) at 12.90 EUR" in message.body
    assert "Total: 25.80 EUR" in message.body
    assert Notification.objects.get(order_id=event.order_id).kind == "order_confirmed"


def test_a_redelivered_event_never_mails_twice():
    # given
    event = confirmed()
    envelope = envelope_for(event)
    # when the same event is handled twice
    handle(handlers.mail_order_confirmed, event, envelope)
    handle(handlers.mail_order_confirmed, event, envelope)
    # then
    assert len(mail.outbox) == 1
    assert Notification.objects.filter(event_id=envelope.event_id).count() == 1


def test_a_cancellation_mail_gives_the_reason():
    event = OrderCancelled(
        order_id=uuid.uuid4(),
        code="payment_failed",
        reason="Payment failed: card declined",
        refund_due=False,
        total=Money(amount=Decimal("1.00"), currency=EUR),
        customer_email="ada@example.com",
    )
    handle(handlers.mail_order_cancelled, event)
    [message] = mail.outbox
    assert "Reason: Payment failed: card declined" in message.body
    assert "not been charged" in message.body


def test_a_shipped_mail_gives_the_tracking_number():
    event = OrderShipped(
        order_id=uuid.uuid4(),
        carrier="Sandbox Parcel",
        tracking_number="SBX000000000007",
        estimated_delivery=dt.date(2030, 1, 9),
        customer_email="ada@example.com",
    )
    handle(handlers.mail_order_shipped, event)
    [message] = mail.outbox
    assert "Tracking number: SBX000000000007" in message.body
    assert "Wednesday 09 January 2030" in message.body


def test_a_customer_without_an_address_is_recorded_as_skipped_and_not_mailed():
    event = confirmed(email="")
    handle(handlers.mail_order_confirmed, event)
    assert mail.outbox == []
    assert Notification.objects.get(order_id=event.order_id).status == "skipped"
