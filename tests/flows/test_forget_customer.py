"""Forgetting a customer through real workers: every context erases its rows, and nothing in the database or in the
logs of the web, worker and relay processes shows them afterwards."""

import logging

import pytest
from django.core.management import call_command

from notifications.models import Notification
from outbox.models import Delivery, OutboxEvent
from tests.customers.test_services import a_customer, assert_nothing_shows, every_row_as_text, order_for
from tests.flows.conftest import dead_letters_of, wait_until_final, wait_until_settled
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]


def test_a_customer_forgotten_after_their_order_shipped_shows_nowhere(live_outbox, caplog):
    caplog.set_level(logging.DEBUG)
    customer, address, personal = a_customer()
    [order] = wait_until_final([order_for(customer, address)], live_outbox=live_outbox)
    wait_until_settled(order, live_outbox=live_outbox)
    assert order.status == "shipped"
    assert set(Notification.objects.filter(order_id=order.id).values_list("recipient", flat=True)) == {customer.email}
    # when
    call_command("customer_forget", customer.username)
    forgotten = OutboxEvent.objects.get(type="customers.CustomerForgotten", aggregate_id=str(customer.pk))

    def erased_everywhere() -> bool:
        deliveries = Delivery.objects.filter(event=forgotten)
        return deliveries.count() == 3 and not deliveries.exclude(status=Delivery.Status.DONE).exists()

    wait_for(erased_everywhere, timeout=30, interval=0.1, what=f"every context to forget\n{live_outbox.logs()}")
    # then
    assert_nothing_shows(personal, every_row_as_text(), live_outbox.logs(), caplog.text)
    assert dead_letters_of(order) == []
