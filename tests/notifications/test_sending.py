"""Sending after the commit, retrying, and the sweep, against a real SMTP server in the test process."""

import datetime as dt
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from notifications import handlers, services
from notifications.models import Notification
from notifications.tasks import send_due
from orders.events import OrderConfirmed, OrderLine
from outbox.events import Money
from tests.factories import envelope_for, make_notification

EUR = "EUR"


class RolledBack(Exception):
    pass


def confirmed() -> OrderConfirmed:
    price = Money(amount=Decimal("4.50"), currency=EUR)
    return OrderConfirmed(
        order_id=uuid.uuid4(),
        total=price,
        lines=(OrderLine(sku="TEA", name="Tea", quantity=1, unit_price=price),),
        customer_email="grace@example.com",
    )


def db_now() -> dt.datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT STATEMENT_TIMESTAMP()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_the_mail_leaves_only_once_the_handlers_transaction_commits(sink):
    # given
    event = confirmed()
    envelope = envelope_for(event)
    # when the handler runs in its transaction
    with transaction.atomic():
        handlers.mail_order_confirmed(event, envelope)
        # then nothing has left while the transaction is open, and the row is pending
        assert sink.count() == 0
        assert Notification.objects.get(event_id=envelope.event_id).status == "pending"
    # and once it commits, the mail is at the server and the row is marked sent
    [received] = sink.received
    notification = Notification.objects.get(event_id=envelope.event_id)
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 1, "")
    assert notification.sent_at is not None
    assert received.message_id == notification.message_id == f"<order_confirmed.{envelope.event_id}@shop.example>"
    assert received.order_id == str(event.order_id)
    assert received.recipients == ("grace@example.com",)
    assert "1 x Tea (TEA) at 4.50 EUR" in received.body


@pytest.mark.django_db
def test_the_server_receives_the_text_and_its_html_alternative_as_the_row_keeps_them_after_a_retry(sink, settings):
    # given a notification whose first send fails
    settings.SHOP_BASE_URL = "https://shop.example.com"
    event = confirmed()
    with transaction.atomic():
        handlers.mail_order_confirmed(event, envelope_for(event))
    notification = Notification.objects.get(order_id=event.order_id)
    sink.down()
    services.notification_send(notification_id=notification.id)
    # when it is sent again
    sink.up()
    services.notification_send(notification_id=notification.id)
    # then the server has one multipart/alternative message, both parts as rendered when the row was committed
    [received] = sink.received
    assert received.message.get_content_type() == "multipart/alternative"
    html = received.message.get_body(preferencelist=("html",)).get_content()
    assert f'href="https://shop.example.com/orders/{event.order_id}/"' in html
    on_the_wire = (received.body.replace("\r\n", "\n"), html.replace("\r\n", "\n"))
    assert on_the_wire == (notification.body, notification.html_body)


@pytest.mark.django_db(transaction=True)
def test_a_handler_whose_transaction_rolls_back_mails_nobody(sink):
    # given
    event = confirmed()
    # when the handler succeeds but its transaction (the batch) rolls back after it
    with pytest.raises(RolledBack), transaction.atomic():
        handlers.mail_order_confirmed(event, envelope_for(event))
        raise RolledBack
    # then nothing was sent and nothing recorded
    assert sink.count() == 0
    assert not Notification.objects.filter(order_id=event.order_id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_handler_run_again_for_the_same_event_sends_nothing_new(sink):
    # given an event whose mail went out
    event = confirmed()
    envelope = envelope_for(event)
    with transaction.atomic():
        handlers.mail_order_confirmed(event, envelope)
    # when the handler runs again for it (a redelivery the inbox did not stop, a replay)
    with transaction.atomic():
        handlers.mail_order_confirmed(event, envelope)
    # then
    assert sink.count(order_id=event.order_id) == 1
    assert Notification.objects.filter(event_id=envelope.event_id).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_hanging_mail_server_costs_one_email_timeout_and_the_mail_stays_pending(sink, settings):
    # given a server that accepts connections and never answers
    settings.EMAIL_TIMEOUT = 2
    sink.hang()
    first, second = confirmed(), confirmed()
    # when one transaction commits two notifications (a batch of two deliveries)
    started = time.monotonic()
    with transaction.atomic():
        handlers.mail_order_confirmed(first, envelope_for(first))
        handlers.mail_order_confirmed(second, envelope_for(second))
    elapsed = time.monotonic() - started
    # then the first send timed out after EMAIL_TIMEOUT, and the second was left to the sweep
    assert 2 <= elapsed < 2 * settings.EMAIL_TIMEOUT, elapsed  # one timeout, not two
    tried = Notification.objects.get(order_id=first.order_id)
    assert (tried.status, tried.attempts) == ("pending", 1)
    assert "timed out" in tried.last_error
    assert tried.next_attempt_at > db_now()
    left = Notification.objects.get(order_id=second.order_id)
    assert (left.status, left.attempts, left.last_error) == ("pending", 0, "")
    assert sink.count() == 0


@pytest.mark.django_db
def test_a_failed_send_is_recorded_with_a_backoff_on_the_database_clock_and_does_not_raise(sink, settings):
    # given a pending notification and a mail server that is down
    settings.NOTIFICATIONS_RETRY_BASE_SECONDS = 60
    notification = make_notification(next_attempt_at=Now())
    sink.down()
    # when it is sent twice
    before = db_now()
    services.notification_send(notification_id=notification.id)
    notification.refresh_from_db()
    first_delay = notification.next_attempt_at - before
    services.notification_send(notification_id=notification.id)
    notification.refresh_from_db()
    # then each failure is recorded, and the next try comes later each time (60 s, then 120 s, +-20%)
    assert (notification.status, notification.attempts) == ("pending", 2)
    assert notification.last_error.startswith("ConnectionRefusedError")
    assert dt.timedelta(seconds=48) <= first_delay <= dt.timedelta(seconds=72)
    assert dt.timedelta(seconds=96) <= notification.next_attempt_at - db_now() <= dt.timedelta(seconds=144)
    assert sink.count() == 0


@pytest.mark.django_db
def test_a_notification_that_keeps_failing_is_marked_failed_after_its_last_attempt(sink, settings):
    # given
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 2
    notification = make_notification(next_attempt_at=Now())
    sink.down()
    # when
    for _ in range(3):
        services.notification_send(notification_id=notification.id)
    # then it was tried twice, then given up (visible in the admin), and no sweep takes it again
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.next_attempt_at) == ("failed", 2, None)
    sink.up()
    assert services.notifications_send_due(limit=10) == 0
    assert sink.count() == 0


@pytest.mark.django_db
def test_the_sweep_leaves_a_fresh_notification_to_its_on_commit_send_for_the_grace(sink, settings):
    # given a notification committed just now, whose on-commit send has not happened yet
    settings.NOTIFICATIONS_SEND_GRACE_SECONDS = 30
    with transaction.atomic():
        handlers.mail_order_confirmed(event := confirmed(), envelope_for(event))
    notification = Notification.objects.get(order_id=event.order_id)
    # when the sweep runs within the grace
    send_due()
    # then it does not take it
    assert sink.count() == 0
    assert Notification.objects.get(id=notification.id).status == "pending"
    # when the grace has passed
    Notification.objects.filter(id=notification.id).update(next_attempt_at=Now())
    send_due()
    # then the sweep sends it
    assert sink.count(message_id=notification.message_id) == 1
    assert Notification.objects.get(id=notification.id).status == "sent"


@pytest.mark.django_db
def test_the_sweep_reads_the_next_try_on_the_database_clock_not_this_hosts(sink, monkeypatch):
    # given one notification due in a minute and one due a second ago, by the database's clock
    later = make_notification(next_attempt_at=Now() + dt.timedelta(minutes=1))
    due = make_notification(next_attempt_at=Now() - dt.timedelta(seconds=1))
    real_now = timezone.now
    # when this host's clock runs an hour fast, the sweep still leaves the one not yet due
    monkeypatch.setattr(timezone, "now", lambda: real_now() + dt.timedelta(hours=1))
    assert services.notifications_send_due(limit=10) == 1
    # and when it runs an hour slow, the sweep still sends what is due
    Notification.objects.filter(id=later.id).update(next_attempt_at=Now() - dt.timedelta(seconds=1))
    monkeypatch.setattr(timezone, "now", lambda: real_now() - dt.timedelta(hours=1))
    assert services.notifications_send_due(limit=10) == 1
    # then each was sent once
    assert [sink.count(message_id=n.message_id) for n in (due, later)] == [1, 1]


@pytest.mark.django_db
def test_the_sweep_stops_at_the_first_failed_send(sink, settings):
    # given three due notifications and a mail server that is down
    notifications = [make_notification(next_attempt_at=Now()) for _ in range(3)]
    sink.down()
    # when the sweep runs
    sent = services.notifications_send_due(limit=10)
    # then it tried one, and left the others for the next sweep instead of failing each in turn
    attempts = sorted(
        Notification.objects.filter(id__in=[n.id for n in notifications]).values_list("attempts", flat=True)
    )
    assert (sent, attempts) == (0, [0, 0, 1])
    # when the server is back and the first one's retry is due
    sink.up()
    Notification.objects.update(next_attempt_at=Now())
    # then one sweep sends them all
    assert services.notifications_send_due(limit=10) == 3
    assert sink.count() == 3
