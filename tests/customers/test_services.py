"""Forgetting a customer (``customer_forget``, the admin action): their key is destroyed and every context erases
their rows; the log still decodes, and replay, the trace, "as of" and the saga go on working."""

import logging
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from customers.events import customer_subject
from customers.models import CustomerForgetting
from inventory.selectors import stock_as_of
from notifications.models import Notification
from orders.events import ERASED_ADDRESS
from orders.models import Order
from orders.selectors import order_as_of
from orders.services import LineRequest, order_confirm, order_place
from outbox.events import registry
from outbox.models import Delivery, InboxEntry, OutboxEvent, SubjectKey
from outbox.relay import dispatch_due, fan_out
from outbox.replay import replay_scope, replay_start, replay_step
from outbox.runner import run_deliveries
from shipping.models import SandboxBooking, Shipment
from tests.factories import CONFIRMED_TO_SHIPPED, CustomerFactory, make_product, run_delivery, take_through
from tests.support.users import make_user

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])


def a_customer():
    """A customer whose every personal value is unique to this test, so a search for it finds only theirs."""
    tag = uuid.uuid4().hex[:8]
    customer = CustomerFactory(
        username=f"ada{tag}", email=f"ada.{tag}@customers.example", first_name=f"Ada{tag}", last_name=f"Byron{tag}"
    )
    address = {
        "name": f"Ada {tag} Lovelace",
        "line1": f"{tag} St James's Square",
        "line2": f"Flat {tag}",
        "city": f"London{tag}",
        "postal_code": f"SW1Y{tag[:4]}",
        "country": "GB",
    }
    personal = [
        customer.username,
        customer.email,
        customer.first_name,
        customer.last_name,
        *list(address.values())[:-1],
    ]
    Token.objects.create(user=customer)
    return customer, address, personal


def order_for(customer, address, *, confirm: bool = True, product=None) -> Order:
    order = order_place(
        customer_id=customer.pk,
        lines=[LineRequest(sku=(product or make_product()).sku, quantity=1)],
        shipping_address=address,
        payment_token="tok_visa",
    )
    return order_confirm(order_id=order.id) if confirm else order


def shipped_and_mailed(customer, address, product=None) -> Order:
    order = take_through(order_for(customer, address, product=product))
    run_delivery(order, "orders.OrderConfirmed", "notifications.mail_order_confirmed")
    run_delivery(order, "orders.OrderShipped", "notifications.mail_order_shipped")
    return order


def run_every_delivery_of(event_type: str) -> None:
    fan_out(batch_size=1000)
    ids = list(
        Delivery.objects.filter(event__type=event_type, status__in=Delivery.UNFINISHED).values_list("id", flat=True)
    )
    report = run_deliveries(ids)
    assert sorted(report.done) == sorted(ids), report


def every_row_as_text() -> str:
    """Every row of every table of the database, as text: what a dump of it would show."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = [name for (name,) in cursor.fetchall()]
        rows = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            rows += [f"{table}: {text}" for (text,) in cursor.fetchall()]
    return "\n".join(rows)


def assert_nothing_shows(personal: list[str], *texts: str) -> None:
    for text in texts:
        found = [value for value in personal if value.lower() in text.lower()]
        assert not found, f"{found} still show: " + next(line for line in text.splitlines() if found[0] in line)


def test_a_forgotten_customer_shows_nowhere_and_every_read_of_the_log_still_works(caplog, capsys):
    caplog.set_level(logging.DEBUG)
    customer, address, personal = a_customer()
    product = make_product(on_hand=10)
    order = shipped_and_mailed(customer, address, product)
    draft = order_for(customer, address, confirm=False)
    before = every_row_as_text()
    assert_found = [value for value in personal if value in before]
    assert assert_found == personal, "the search must find the data before it is forgotten"
    # when
    call_command("customer_forget", customer.username)
    run_every_delivery_of("customers.CustomerForgotten")
    # then nothing in the database, the logs or the command's output shows them
    assert_nothing_shows(personal, every_row_as_text(), caplog.text, capsys.readouterr().out)
    assert not SubjectKey.objects.filter(subject__in=[customer_subject(customer.pk), f"payment:{draft.id}"]).exists()
    user = get_user_model().objects.get(pk=customer.pk)
    assert (user.username, user.is_active, user.has_usable_password()) == (f"forgotten-{user.pk}", False, False)
    assert not Token.objects.filter(user=user).exists()
    assert set(Notification.objects.filter(order_id=order.id).values_list("recipient", flat=True)) == {""}
    assert Shipment.objects.get(order_id=order.id).address is None
    assert SandboxBooking.objects.get(idempotency_key=f"book-{order.id}").address == {}
    # every event of the order still decodes, personal fields erased, the rest intact
    events = OutboxEvent.objects.filter(correlation_id=order.correlation_id).order_by("id")
    decoded = {row.type: registry.decode(row.type, row.version, row.payload) for row in events}
    assert decoded["orders.OrderConfirmed"].customer_email == ""
    assert decoded["orders.OrderConfirmed"].shipping_address == ERASED_ADDRESS
    assert decoded["orders.OrderShipped"].tracking_number == Order.objects.get(pk=order.id).tracking_number
    # as of: the order and the stock still fold
    snapshot = order_as_of(order=Order.objects.get(pk=order.id), at=timezone.now())
    assert snapshot.status == "shipped"
    assert not any(snapshot.shipping_address.values())
    assert stock_as_of(sku=product.sku, at=timezone.now()).on_hand == 9
    # the trace still prints the workflow, without them
    call_command("outbox_trace", str(order.id))
    trace = capsys.readouterr().out
    assert "orders.OrderShipped" in trace
    assert_nothing_shows(personal, trace)
    # a replay still delivers the order's events (here to a handler whose delivery and inbox entry retention pruned)
    ready = events.get(type="orders.OrderReadyToShip")
    Delivery.objects.filter(event=ready, handler="shipping.book_shipment").delete()
    InboxEntry.objects.filter(handler="shipping.book_shipment", event_id=ready.event_id).delete()
    scope = replay_scope(handler="shipping.book_shipment", aggregate=str(order.id))
    progress = replay_start(scope=scope)
    assert replay_step(scope=scope, progress_id=progress.id, batch_size=100).created == 1
    dispatch_due(batch_size=100)  # the relay's part: a replayed delivery is created pending
    replayed = Delivery.objects.get(event=ready, handler="shipping.book_shipment", status__in=Delivery.UNFINISHED)
    assert run_deliveries([replayed.id]).done == [replayed.id]
    # and the saga still takes another customer's order to the end
    other = take_through(order_for(CustomerFactory(), address, product=product))
    assert other.status == "shipped"


def test_forgetting_twice_is_harmless(capsys):
    customer, address, _ = a_customer()
    shipped_and_mailed(customer, address)
    call_command("customer_forget", str(customer.pk))
    first = CustomerForgetting.objects.get(customer_id=customer.pk)
    call_command("customer_forget", str(customer.pk))
    assert list(CustomerForgetting.objects.filter(customer_id=customer.pk)) == [first]
    assert OutboxEvent.objects.filter(type="customers.CustomerForgotten", aggregate_id=str(customer.pk)).count() == 1


def test_a_customer_with_an_order_in_flight_is_not_forgotten_and_nothing_changes():
    customer, address, _ = a_customer()
    order = order_for(customer, address)  # confirmed: payment, stock and shipping still to come
    take_through(order, CONFIRMED_TO_SHIPPED[:1])
    # when
    with pytest.raises(CommandError, match=rf"has 1 order\(s\) in flight \({order.id}\).*once each has shipped") as exc:
        call_command("customer_forget", customer.username)
    # then
    assert exc.value.returncode == 2
    assert SubjectKey.objects.filter(subject=customer_subject(customer.pk)).exists()
    assert get_user_model().objects.get(pk=customer.pk).email == customer.email
    assert not OutboxEvent.objects.filter(type="customers.CustomerForgotten").exists()


@pytest.mark.parametrize("user", ["nobody-here", "999999999"])
def test_an_unknown_user_exits_2(user):
    with pytest.raises(CommandError, match="No user is named") as exc:
        call_command("customer_forget", user)
    assert exc.value.returncode == 2


def test_staff_are_not_forgotten_by_mistake():
    staff = make_user("sam", staff=True)
    with pytest.raises(CommandError, match="is staff: take their staff status away") as exc:
        call_command("customer_forget", "sam")
    assert exc.value.returncode == 2
    assert get_user_model().objects.get(pk=staff.pk).username == "sam"


def test_the_admin_action_forgets_for_staff_with_the_permission_only(client):
    customer, address, _ = a_customer()
    shipped_and_mailed(customer, address)
    url = reverse("admin:auth_user_changelist")
    clerk = make_user("clerk", staff=True, perms=("auth.view_user", "auth.change_user"))
    client.force_login(clerk)
    form = client.get(url).context["action_form"]
    assert form is None or "forget_customers" not in dict(form.fields["action"].choices)
    client.post(url, {"action": "forget_customers", "_selected_action": [customer.pk]})
    assert not CustomerForgetting.objects.filter(customer_id=customer.pk).exists()
    # with the permission
    officer = make_user("dpo", staff=True, perms=("auth.view_user", "customers.forget_customer"))
    client.force_login(officer)
    assert "forget_customers" in dict(client.get(url).context["action_form"].fields["action"].choices)
    response = client.post(url, {"action": "forget_customers", "_selected_action": [customer.pk]}, follow=True)
    assert "1 customer(s) forgotten" in response.content.decode()
    assert CustomerForgetting.objects.get(customer_id=customer.pk).forgotten_by == officer
