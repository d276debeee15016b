"""The card token never rests in the clear: sealed in the draft and in OrderConfirmed, shredded once payments answered,
and shown nowhere (events API, dead letters, the admin, the sandbox provider's ledger)."""

import pytest
from django.db import connection
from django.urls import reverse

from orders.models import Order
from orders.services import order_cancel
from outbox.events import registry
from outbox.models import OutboxEvent
from outbox.personal import open_value
from payments.models import Payment, SandboxCharge
from tests.factories import CONFIRMED_TO_SHIPPED, place_order, run_delivery, take_through
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])

TOKEN = "tok_visa"


def confirmed_event(order: Order) -> OutboxEvent:
    return OutboxEvent.objects.get(correlation_id=order.correlation_id, type="orders.OrderConfirmed")


def database_text(*tables: str) -> str:
    """Every row of the tables, as text: what a dump of them would show."""
    with connection.cursor() as cursor:
        return "\n".join(
            str(row) for table in tables for row in cursor.execute(f"SELECT t::text FROM {table} t").fetchall()
        )


def test_a_drafts_token_is_kept_sealed_and_confirming_moves_it_sealed_into_the_event():
    draft = place_order(token=TOKEN)
    assert TOKEN not in draft.payment_token
    assert draft.payment_token.startswith('{"sealed_for":"payment:')
    # when
    order = place_order(token=TOKEN, confirm=True)
    # then the row keeps nothing and the log keeps it sealed, readable by payments
    assert order.payment_token == ""
    event = confirmed_event(order)
    assert TOKEN not in database_text("orders_order", "outbox_event")
    assert registry.decode(event.type, event.version, event.payload).payment_token == TOKEN


def test_once_payments_has_answered_the_token_is_shredded_and_the_event_still_decodes():
    order = take_through(place_order(token=TOKEN, confirm=True), CONFIRMED_TO_SHIPPED[:3])  # paid, saga told
    assert Payment.objects.get(order_id=order.id).status == "authorised"
    event = confirmed_event(order)
    decoded = registry.decode(event.type, event.version, event.payload)
    assert decoded.payment_token == ""
    assert decoded.total.amount == order.total_amount


def test_a_failed_payment_shreds_the_token_too():
    order = place_order(token="tok_decline_insufficient_funds", confirm=True)
    run_delivery(order, "orders.OrderConfirmed", "payments.authorise_payment")
    run_delivery(order, "payments.PaymentFailed", "orders.record_payment_failed")
    event = confirmed_event(order)
    assert registry.decode(event.type, event.version, event.payload).payment_token == ""


def test_a_cancelled_draft_forgets_its_token():
    draft = place_order(token=TOKEN)
    sealed = draft.payment_token
    order_cancel(order_id=draft.id, reason="changed my mind", by_user_id=draft.customer_id)
    draft.refresh_from_db()
    assert draft.payment_token == ""
    assert open_value(sealed) is None


def test_an_unknown_token_is_declined_without_being_repeated_in_the_reason():
    secret = "tok_4242424242424242"
    order = place_order(token=secret, confirm=True)
    run_delivery(order, "orders.OrderConfirmed", "payments.authorise_payment")
    payment = Payment.objects.get(order_id=order.id)
    assert payment.status == "declined"
    assert payment.failure_reason == "unknown payment token (…4242)"
    assert secret not in database_text("payments_payment", "outbox_event", "payments_sandboxcharge")


def test_the_token_shows_nowhere_staff_look(client):
    order = place_order(token=TOKEN, confirm=True)
    run_delivery(order, "orders.OrderConfirmed", "payments.authorise_payment")  # a charge at the sandbox
    event = confirmed_event(order)
    admin = make_user("root", staff=True, is_superuser=True)
    client.force_login(admin)
    pages = {
        "events API": token_client(admin).get("/api/events/", {"correlation_id": str(order.correlation_id)}),
        "order events API": token_client(admin).get(f"/api/orders/{order.id}/events/"),
        "event admin": client.get(reverse("admin:outbox_outboxevent_change", args=[event.id])),
        "order admin": client.get(reverse("admin:orders_order_change", args=[order.id])),
        "sandbox charges": client.get(reverse("admin:payments_sandboxcharge_changelist")),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        assert TOKEN not in response.content.decode(), f"the token shows on the {name}"
    assert "…visa" in pages["sandbox charges"].content.decode()  # its last four, as a real provider shows
    assert SandboxCharge.objects.get().card == "…visa"
