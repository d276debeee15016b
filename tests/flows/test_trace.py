"""Acceptance: the trace of a shipped order lists every event and handler of its flow with parent links.

The order goes from confirmed to shipped through a real relay and real
workers; the trace is then read from what they left in the database.
"""

import re
from io import StringIO

import pytest
from django.core.management import call_command

from outbox.models import Delivery
from outbox.selectors import causal_tree
from tests.factories import make_product, place_order
from tests.flows.conftest import one, wait_until_final, wait_until_settled

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]

EVENT_LINE = re.compile(r"^(?P<indent> *)(?P<type>[a-z]+\.\w+) v\d+ #(?P<id>\d+) at ")
RUN_LINE = re.compile(r"^ *-> (?P<handler>[\w.]+): (?P<status>\w+), ")


def test_the_trace_of_a_shipped_order_lists_every_event_and_handler_of_its_flow_with_parent_links(live_outbox):
    # given an order taken to shipped by the real workers
    order = place_order(lines=[(make_product(on_hand=5), 1)], token="tok_visa", confirm=True)
    [order] = wait_until_final([order], live_outbox=live_outbox)
    assert order.status == "shipped", order.cancel_reason
    events = wait_until_settled(order, live_outbox=live_outbox)
    deliveries = Delivery.objects.filter(event__correlation_id=order.correlation_id)
    # when the operator traces the order
    out = StringIO()
    call_command("outbox_trace", str(order.id), stdout=out)
    lines = out.getvalue().splitlines()
    # then every event of the flow is printed once, each indented one step under the event that caused it
    printed = [(m, i) for i, line in enumerate(lines) if (m := EVENT_LINE.match(line))]
    by_id = {event.id: event for event in events}
    assert sorted(int(m["id"]) for m, _ in printed) == sorted(by_id)
    stack: list[tuple[int, int]] = []  # (depth, event id) of the events above the current line
    for m, _ in printed:
        depth = len(m["indent"]) // 4
        del stack[depth:]
        event = by_id[int(m["id"])]
        parent = by_id[stack[-1][1]].event_id if stack else None
        assert parent == (event.causation_id if depth else None), f"{event.type} printed under the wrong event"
        stack.append((depth, event.id))
    # and the flow's chain hangs together: confirmed -> paid or reserved -> ready -> arranged -> shipped
    chain = [
        "orders.OrderConfirmed",
        "orders.OrderReadyToShip",
        "shipping.ShippingArranged",
        "orders.OrderShipped",
    ]
    roots = causal_tree(correlation_id=order.correlation_id)
    [confirmed_root] = [root for root in roots if root.event.type == "orders.OrderConfirmed"]
    path = confirmed_root.path_to(one(events, "orders.OrderShipped").event_id)
    types = [node.event.type for node in path]
    assert [t for t in types if t in chain] == chain
    assert types[1] in ("payments.PaymentProcessed", "inventory.InventoryReserved")
    # and every handler that ran is listed under its event, done, with the time from the event to done
    runs = {}
    for index, line in enumerate(lines):
        if m := RUN_LINE.match(line):
            owner = next(EVENT_LINE.match(lines[i]) for i in range(index, -1, -1) if EVENT_LINE.match(lines[i]))
            runs[(int(owner["id"]), m["handler"])] = (m["status"], line)
    assert set(runs) == {(d.event_id, d.handler) for d in deliveries}
    assert {status for status, _ in runs.values()} == {"done"}
    assert all(re.search(r"took -?\d+\.\d ms", line) for _, line in runs.values())
    assert deliveries.count() >= 6
