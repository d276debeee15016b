"""Customer emails, run in-process with Django's locmem email backend: what each says, and that it is one."""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.core import mail

from customers.events import CustomerForgotten
from notifications import handlers
from notifications.models import Notification
from orders.events import OrderCancelled, OrderConfirmed, OrderLine, OrderShipped, ShippingAddress
from outbox.events import Money
from tests.factories import envelope_for, handle, make_product, place_order

pytestmark = pytest.mark.django_db

EUR = "EUR"
ADDRESS = ShippingAddress(name="Ada Lovelace", line1="1 Analytical Row", city="London", postal_code="N1", country="GB")


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a handler as the runner does, then let its transaction commit: the on-commit send runs."""

    def run(handler, event, envelope=None):
        with django_capture_on_commit_callbacks(execute=True):
            return handle(handler, event, envelope)

    return run


def confirmed(email: str = "ada@example.com") -> OrderConfirmed:
    price = Money(amount=Decimal("12.90"), currency=EUR)
    return OrderConfirmed(
        order_id=uuid.uuid4(),
        total=Money(amount=Decimal("25.80"), currency=EUR),
        lines=(OrderLine(sku="MUG", name="Ceramic mug", quantity=2, unit_price=price),),
        customer_email=email,
    )


def test_a_confirmation_mail_lists_the_lines_and_total(committed):
    # given
    event = confirmed()
    # when
    committed(handlers.mail_order_confirmed, event)
    # then
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert "confirmed" in message.subject
    assert "2 x Ceramic mug (MUG) at 12.90 EUR" in message.body
    assert "Total: 25.80 EUR" in message.body
    assert Notification.objects.get(order_id=event.order_id).kind == "order_confirmed"


def test_a_redelivered_event_never_mails_twice(committed):
    # given
    event = confirmed()
    envelope = envelope_for(event)
    # when the same event is handled twice
    committed(handlers.mail_order_confirmed, event, envelope)
    committed(handlers.mail_order_confirmed, event, envelope)
    # then
    assert len(mail.outbox) == 1
    assert Notification.objects.filter(event_id=envelope.event_id).count() == 1


def test_a_cancellation_mail_gives_the_reason(committed):
    event = OrderCancelled(
        order_id=uuid.uuid4(),
        code="payment_failed",
        reason="Payment failed: card declined",
        refund_due=False,
        total=Money(amount=Decimal("1.00"), currency=EUR),
        customer_email="ada@example.com",
    )
    committed(handlers.mail_order_cancelled, event)
    [message] = mail.outbox
    assert "Reason: Payment failed: card declined" in message.body
    assert "not been charged" in message.body


def test_a_shipped_mail_gives_the_tracking_number(committed):
    event = OrderShipped(
        order_id=uuid.uuid4(),
        carrier="Sandbox Parcel",
        tracking_number="SBX000000000007",
        estimated_delivery=dt.date(2030, 1, 9),
        customer_email="ada@example.com",
    )
    committed(handlers.mail_order_shipped, event)
    [message] = mail.outbox
    assert "Tracking number: SBX000000000007" in message.body
    assert "Estimated delivery: Wednesday, Jan. 9, 2030" in message.body


def test_a_customer_without_an_address_is_recorded_as_skipped_and_not_mailed(committed):
    event = confirmed(email="")
    committed(handlers.mail_order_confirmed, event)
    assert mail.outbox == []
    assert Notification.objects.get(order_id=event.order_id).status == "skipped"


def test_the_handler_commits_a_pending_notification_and_sends_nothing_itself(django_capture_on_commit_callbacks):
    # given
    event = confirmed()
    # when the handler has run but its transaction has not committed
    with django_capture_on_commit_callbacks(execute=False) as on_commit:
        envelope = handle(handlers.mail_order_confirmed, event)
    # then the notification is pending, nothing is sent, and one send waits for the commit
    notification = Notification.objects.get(event_id=envelope.event_id)
    assert (notification.status, notification.attempts, notification.sent_at) == ("pending", 0, None)
    assert notification.next_attempt_at is not None
    assert mail.outbox == []
    assert len(on_commit) == 1


def test_every_mail_carries_the_message_id_of_its_event_and_kind_and_the_order_id(committed):
    # given
    event = confirmed()
    # when
    envelope = committed(handlers.mail_order_confirmed, event)
    # then
    [message] = mail.outbox
    notification = Notification.objects.get(event_id=envelope.event_id)
    assert notification.message_id == f"<order_confirmed.{envelope.event_id}@shop.example>"
    assert message.message()["Message-ID"] == notification.message_id
    assert message.message()["X-Order-ID"] == str(event.order_id)
    assert (notification.status, notification.attempts, notification.next_attempt_at) == ("sent", 1, None)
    assert notification.sent_at is not None


def test_the_message_id_domain_can_be_set(committed, settings):
    # given
    settings.NOTIFICATIONS_MESSAGE_ID_DOMAIN = "mail.shop.example"
    # when
    envelope = committed(handlers.mail_order_confirmed, confirmed())
    # then
    [message] = mail.outbox
    assert message.message()["Message-ID"] == f"<order_confirmed.{envelope.event_id}@mail.shop.example>"


def test_the_mail_has_an_html_alternative_linking_to_the_order_and_the_row_keeps_both_parts(committed, settings):
    # given
    settings.SHOP_BASE_URL = "https://shop.example.com"
    event = confirmed()
    # when
    committed(handlers.mail_order_confirmed, event)
    # then
    [message] = mail.outbox
    [(html, mimetype)] = message.alternatives
    link = f"https://shop.example.com/orders/{event.order_id}/"
    assert mimetype == "text/html"
    assert f'href="{link}"' in html
    assert "25.80 EUR" in html
    assert f"Your order: {link}" in message.body
    notification = Notification.objects.get(order_id=event.order_id)
    assert (notification.body, notification.html_body) == (message.body, html)


def test_the_shipped_and_cancelled_mails_list_the_orders_lines_read_from_orders(committed):
    # given a real order (the events of shipping and cancelling carry no lines)
    order = place_order(lines=[(make_product(price="7.25"), 3)])
    name = order.lines.get().name
    shipped = OrderShipped(
        order_id=order.id,
        carrier="Sandbox Parcel",
        tracking_number="SBX1",
        estimated_delivery=dt.date(2030, 1, 9),
        customer_email="ada@example.com",
    )
    cancelled = OrderCancelled(
        order_id=order.id, code="customer", reason="Asked", refund_due=False, total=Money(amount=1, currency=EUR)
    )
    # when
    committed(handlers.mail_order_shipped, shipped)
    committed(handlers.mail_order_cancelled, cancelled)
    # then
    [shipped_mail] = mail.outbox
    assert f"3 x {name} ({order.lines.get().sku}) at 7.25 EUR: 21.75 EUR" in shipped_mail.body
    assert "Total: 21.75 EUR" in shipped_mail.body
    cancelled_row = Notification.objects.get(order_id=order.id, kind="order_cancelled")
    assert f"3 x {name}" in cancelled_row.body
    assert "21.75 EUR" in cancelled_row.html_body


def test_forgetting_the_customer_erases_the_address_and_the_bodies_of_their_mail(committed):
    # given a sent confirmation that greets the customer by name and shows their address
    event = confirmed().model_copy(update={"shipping_address": ADDRESS})
    committed(handlers.mail_order_confirmed, event)
    assert "Ada Lovelace" in Notification.objects.get(order_id=event.order_id).body
    # when
    handle(handlers.forget_customer, CustomerForgotten(customer_id=1, order_ids=(event.order_id,)))
    # then
    notification = Notification.objects.get(order_id=event.order_id)
    assert (notification.recipient, notification.body, notification.html_body) == ("", "", "")
    assert (notification.status, notification.subject) == ("sent", mail.outbox[0].subject)
