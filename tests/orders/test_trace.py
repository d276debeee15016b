"""An order's causal tree: ``outbox_trace <order id>`` (the orders app resolves the id) and the admin's panels.

The order is taken to shipped by the real handlers, run in this process
(tests/support/workflow.py); the acceptance test with real workers is
tests/flows/test_trace.py.
"""

import re
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from tests.factories import make_product, place_order
from tests.support.users import make_user
from tests.support.workflow import run_until_settled

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])


@pytest.fixture
def shipped() -> Order:
    order = place_order(lines=[(make_product(), 2)], confirm=True)
    run_until_settled(order.correlation_id)
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED, order.cancel_reason
    return order


def test_the_trace_of_an_order_id_is_its_workflows(shipped):
    # when
    out = StringIO()
    call_command("outbox_trace", str(shipped.id), stdout=out)
    lines = out.getvalue().splitlines()
    # then it says which order it traces, and lists every event of the order's life once
    events = OutboxEvent.objects.filter(correlation_id=shipped.correlation_id)
    assert lines[0].startswith(
        f"Workflow {shipped.correlation_id} (of the order {shipped.id}): {events.count()} events"
    )
    printed = [int(m[1]) for line in lines if (m := re.match(r"^ *[a-z]+\.\w+ v\d+ #(\d+) at ", line))]
    assert sorted(printed) == sorted(events.values_list("id", flat=True))
    # and every delivery, done
    runs = [line.strip() for line in lines if line.strip().startswith("-> ")]
    handlers = Delivery.objects.filter(event__correlation_id=shipped.correlation_id).values_list("handler", flat=True)
    assert sorted(run.split(":")[0].removeprefix("-> ") for run in runs) == sorted(handlers)
    assert all(": done, 1 attempt, took " in run for run in runs)
    # and shipping under the readiness that caused it
    ready = next(i for i, line in enumerate(lines) if "orders.OrderReadyToShip" in line)
    depth = len(lines[ready]) - len(lines[ready].lstrip())
    arranged = next(line for line in lines[ready:] if "shipping.ShippingArranged" in line)
    assert len(arranged) - len(arranged.lstrip()) == depth + 4


def test_an_order_id_that_names_no_order_exits_2():
    with pytest.raises(CommandError) as refused:
        call_command("outbox_trace", str(uuid.UUID(int=42)), stdout=StringIO())
    assert refused.value.returncode == 2


def test_the_orders_page_shows_its_causal_tree_with_each_handlers_run_and_failure(admin_client, shipped):
    # given one of its deliveries took a second attempt
    booked = Delivery.objects.get(event__correlation_id=shipped.correlation_id, handler="shipping.book_shipment")
    Delivery.objects.filter(id=booked.id).update(
        attempts=2, last_error="CarrierUnavailable: try again", error_type="shipping.carrier.CarrierUnavailable"
    )
    # when
    page = admin_client.get(reverse("admin:orders_order_change", args=[shipped.pk])).content.decode()
    # then the panel is there, read-only, with each event linked and indented by its depth
    assert "Causal tree (each event under the one that caused it" in page
    tree = page[page.index('<div class="causal-tree">') :]
    for event in OutboxEvent.objects.filter(correlation_id=shipped.correlation_id):
        assert f'<a href="{reverse("admin:outbox_outboxevent_change", args=[event.id])}">#{event.id}</a>' in tree
    ready = OutboxEvent.objects.get(correlation_id=shipped.correlation_id, type="orders.OrderReadyToShip")
    arranged = OutboxEvent.objects.get(correlation_id=shipped.correlation_id, type="shipping.ShippingArranged")
    assert _indent(tree, arranged) == _indent(tree, ready) + 28
    # and each handler's run, with its attempts, time, and the failed attempt's error (the database's clock stands
    # still inside the test's one transaction, so a hop measured against it may read negative here)
    link = reverse("admin:outbox_delivery_change", args=[booked.id])
    assert re.search(rf'<a href="{link}">shipping.book_shipment</a>:\s+done, 2 attempts, took -?[\d.]+ ms', tree)
    assert "1 failed attempt; the last [shipping.carrier.CarrierUnavailable]: CarrierUnavailable: try again" in tree
    assert 'name="_save"' not in page


def test_an_events_page_shows_its_workflow_with_the_event_marked(admin_client, shipped):
    shipped_event = OutboxEvent.objects.get(correlation_id=shipped.correlation_id, type="orders.OrderShipped")
    page = admin_client.get(reverse("admin:outbox_outboxevent_change", args=[shipped_event.id])).content.decode()
    assert "Workflow (its causal tree)" in page
    assert page.count("(this event)") == 1
    assert re.search(r"<b>orders.OrderShipped</b> v\d+\s+at [\d-]+ [\d:.]+ UTC <b>\(this event\)</b>", page)


def test_staff_who_may_view_orders_see_the_tree_too(client, shipped):
    client.force_login(make_user("vic", staff=True, perms=("orders.view_order",)))
    page = client.get(reverse("admin:orders_order_change", args=[shipped.pk]))
    assert page.status_code == 200
    assert '<div class="causal-tree">' in page.content.decode()


def _indent(tree: str, event: OutboxEvent) -> int:
    """The left margin, in px, of the event's row."""
    link = f'<a href="{reverse("admin:outbox_outboxevent_change", args=[event.id])}">#{event.id}</a>'
    row = tree[: tree.index(link)]
    return int(re.findall(r"margin-left: (\d+)px", row)[-1])
