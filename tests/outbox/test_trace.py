"""The causal tree of a workflow (``outbox.selectors.causal_tree``) and ``manage.py outbox_trace``.

Workflows here are made of probe events published with their causes, and
deliveries left as the runner leaves them; an order's trace is in
tests/orders/test_trace.py and the acceptance test in tests/flows/test_trace.py.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from outbox import admin as outbox_admin
from outbox.models import Delivery, DeliveryFailure, OutboxEvent
from outbox.publishing import publish
from outbox.selectors import causal_tree, workflow_named
from outbox.tracing import workflow_resolvers
from tests.outbox.probe.events import Broke, Flaked, Pinged
from tests.support.commands import manage
from tests.support.users import make_user

pytestmark = pytest.mark.django_db


@dataclass
class Workflow:
    """A request set off ``root``; its handlers published ``flaked`` and ``broke``; ``flaked``'s handler ``echo``."""

    correlation_id: uuid.UUID
    request_id: uuid.UUID
    root: OutboxEvent
    flaked: OutboxEvent
    broke: OutboxEvent
    echo: OutboxEvent


def make_workflow() -> Workflow:
    correlation, request = uuid.uuid4(), uuid.uuid4()
    thing = uuid.uuid4()
    with transaction.atomic():
        root = publish(Pinged(thing_id=thing), correlation_id=correlation, causation_id=request)
        flaked = publish(Flaked(thing_id=thing), correlation_id=correlation, causation_id=root.event_id)
        broke = publish(Broke(thing_id=thing), correlation_id=correlation, causation_id=root.event_id)
        echo = publish(Pinged(thing_id=thing, seq=1), correlation_id=correlation, causation_id=flaked.event_id)
        publish(Pinged(thing_id=thing))  # another workflow's
    # the root's handlers are done, the flaky one after two failures (on record); the broken one is dead (it failed
    # before each failure was recorded: only its last error is known)
    done_at = root.occurred_at + timedelta(milliseconds=25)
    Delivery.objects.filter(event=root).update(status="done", attempts=1, started_at=done_at, finished_at=done_at)
    Delivery.objects.filter(event=flaked).update(
        status="done",
        attempts=3,
        started_at=done_at,
        finished_at=done_at,
        last_error="RuntimeError: flaky, 2 more",
        error_type="RuntimeError",
    )
    flaky = Delivery.objects.get(event=flaked)
    DeliveryFailure.objects.bulk_create(
        DeliveryFailure(
            delivery=flaky,
            attempt=n,
            cause="handler_error",
            error_type="RuntimeError",
            error=f"RuntimeError: flaky, {n} more\nsecond line",
            failed_at=done_at - timedelta(milliseconds=10 - n),
        )
        for n in (1, 2)
    )
    Delivery.objects.filter(event=broke).update(
        status="dead", attempts=3, finished_at=done_at, last_error="ValueError: the probe is broken\nmore lines"
    )
    return Workflow(correlation, request, root, flaked, broke, echo)


def trace(*args: str) -> list[str]:
    out = StringIO()
    call_command("outbox_trace", *args, stdout=out)
    return out.getvalue().splitlines()


# the tree, as data


def test_each_event_is_under_the_event_that_caused_it_in_log_order():
    # given
    flow = make_workflow()
    # when
    [root] = causal_tree(correlation_id=flow.correlation_id)
    # then
    assert root.event == flow.root
    assert [child.event for child in root.children] == [flow.flaked, flow.broke]
    assert [child.event for child in root.children[0].children] == [flow.echo]
    assert [(depth, node.event) for depth, node in root.walk()] == [
        (0, flow.root),
        (1, flow.flaked),
        (2, flow.echo),
        (1, flow.broke),
    ]


def test_each_event_has_its_handlers_runs_with_the_time_from_the_event_to_done_and_the_failed_attempts():
    # given
    flow = make_workflow()
    # when
    [root] = causal_tree(correlation_id=flow.correlation_id)
    flaked, broke = root.children
    # then
    assert sorted(run.delivery.handler for run in root.runs) == ["probe.record_a", "probe.record_b", "probe.record_c"]
    [flaky] = flaked.runs
    assert (flaky.delivery.handler, flaky.delivery.status, flaky.failed_attempts) == ("probe.flaky", "done", 2)
    assert [(f.attempt, f.error.splitlines()[0]) for f in flaky.failures] == [
        (1, "RuntimeError: flaky, 1 more"),
        (2, "RuntimeError: flaky, 2 more"),
    ]
    assert flaky.took == timedelta(milliseconds=25) - (flow.flaked.occurred_at - flow.root.occurred_at)
    [breakable] = broke.runs
    assert (breakable.delivery.status, breakable.failed_attempts) == ("dead", 3)
    [echo_run] = flaked.children[0].runs[:1]
    assert (echo_run.delivery.status, echo_run.took) == ("dispatched", None)  # not finished: no time yet


def test_an_event_whose_cause_is_later_in_the_log_is_a_root_so_no_link_can_hide_an_event():
    # given two events of a workflow that name each other as their cause (a corrupted link)
    correlation, first_id, second_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    first = raw_event(event_id=first_id, correlation_id=correlation, causation_id=second_id)
    second = raw_event(event_id=second_id, correlation_id=correlation, causation_id=first_id)
    # when
    roots = causal_tree(correlation_id=correlation)
    # then the earlier is a root and the later its child: both are shown
    assert [node.event.id for root in roots for _, node in root.walk()] == [first.id, second.id]


def raw_event(**envelope: object) -> OutboxEvent:
    """A row as any code could have written it, whatever its links say."""
    return OutboxEvent.objects.create(
        type="probe.Pinged",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="probe.Thing",
        aggregate_id=str(uuid.uuid4()),
        payload={"thing_id": str(uuid.uuid4()), "seq": 0},
        relayed_at=timezone.now(),
        **envelope,
    )


def test_the_path_to_an_event_runs_from_its_root():
    flow = make_workflow()
    [root] = causal_tree(correlation_id=flow.correlation_id)
    assert [node.event for node in root.path_to(flow.echo.event_id)] == [flow.root, flow.flaked, flow.echo]
    assert root.path_to(uuid.uuid4()) is None


def test_an_id_names_an_event_a_workflow_or_what_a_registered_resolver_maps_it_to():
    # given a workflow, and a resolver that knows one more id of it
    flow = make_workflow()
    other = uuid.uuid4()
    workflow_resolvers.add("probe thing", lambda ident: flow.correlation_id if ident == other else None)
    try:
        # when / then
        assert workflow_named(ident=flow.flaked.event_id).event_id == flow.flaked.event_id
        assert workflow_named(ident=flow.correlation_id).named_by == "workflow"
        by_resolver = workflow_named(ident=other)
        assert (by_resolver.correlation_id, by_resolver.named_by) == (flow.correlation_id, "probe thing")
        assert workflow_named(ident=uuid.uuid4()) is None
    finally:
        workflow_resolvers.remove("probe thing")


# the command


def test_the_trace_of_a_workflow_prints_each_event_under_its_cause_with_its_handlers():
    # given
    flow = make_workflow()
    # when
    lines = trace(str(flow.correlation_id))
    # then a heading that counts what it shows
    assert lines[0] == (
        f"Workflow {flow.correlation_id}: 4 events, 8 deliveries (4 done, 1 dead, 3 unfinished). Times UTC."
    )
    # and each event, indented under its cause; the root names the request that caused it
    events = [line for line in lines if re.match(r"^ *probe\.", line)]
    assert [re.match(r"^( *)(\S+) v1 #(\d+)", line).groups() for line in events] == [
        ("", "probe.Pinged", str(flow.root.id)),
        ("    ", "probe.Flaked", str(flow.flaked.id)),
        ("        ", "probe.Pinged", str(flow.echo.id)),
        ("    ", "probe.Broke", str(flow.broke.id)),
    ]
    assert events[0].endswith(f"event {flow.root.event_id} caused by {flow.request_id}")
    assert "caused by" not in events[1]
    # and each handler's run, with the time from the event to done and each failed attempt's error
    text = "\n".join(lines) + "\n"
    assert re.search(r"\n      -> probe\.flaky: done, 3 attempts, took \d+\.\d ms, started .*, finished ", text)
    for n in (1, 2):
        assert re.search(
            rf"\n         ! attempt {n} failed at [\d-]+ [\d:.]+, handler error \[RuntimeError\]: "
            rf"RuntimeError: flaky, {n} more\n",
            text,
        )
    # and a delivery that failed before failures were recorded shows the last error it kept
    assert re.search(r"\n      -> probe\.breakable: dead, 3 attempts, took \d+\.\d ms, finished ", text)
    assert "\n         ! 3 failed attempts; the last: ValueError: the probe is broken\n" in text
    assert re.search(r"\n          -> probe\.record_a: dispatched, 0 attempts\n", text)


def test_the_trace_of_an_event_prints_the_events_that_led_to_it_and_what_it_caused():
    # given
    flow = make_workflow()
    # when
    lines = trace(str(flow.flaked.event_id))
    # then
    assert lines[0].startswith(f"Workflow {flow.correlation_id} (of the event {flow.flaked.event_id}): 4 events")
    events = [line for line in lines if re.match(r"^ *probe\.", line)]
    assert [line.split(" v1")[0] for line in events] == ["probe.Pinged", "    probe.Flaked", "        probe.Pinged"]
    assert events[1].endswith("<== the event asked for")
    assert "probe.Broke" not in "\n".join(lines)  # a sibling: not on its path, not caused by it


def test_an_event_nobody_subscribes_to_says_so():
    # given a workflow of one event whose handlers were unsubscribed since (its deliveries never made)
    with transaction.atomic():
        row = publish(Pinged(thing_id=uuid.uuid4()))
    Delivery.objects.filter(event=row).delete()
    # when
    lines = trace(str(row.correlation_id))
    # then
    assert lines[2] == "  (no handler subscribed)"


@pytest.fixture
def an_order_resolver():
    """The workflow resolvers as a project with orders registers them: one, named "order", whatever this one has."""
    registered = workflow_resolvers.all()
    for resolver in registered:
        workflow_resolvers.remove(resolver.name)
    workflow_resolvers.add("order", lambda ident: None)
    yield
    workflow_resolvers.remove("order")
    for resolver in registered:
        workflow_resolvers.add(resolver.name, resolver.resolve)


def test_an_unknown_id_exits_2_naming_what_it_looked_for(an_order_resolver):
    with pytest.raises(CommandError) as refused:
        trace(str(uuid.UUID(int=7)))
    assert refused.value.returncode == 2
    assert str(refused.value) == (
        f"Nothing has the id {uuid.UUID(int=7)}: it is not the id of an event, a workflow (its correlation id) "
        "or an order."
    )


def test_an_id_that_is_not_a_uuid_exits_2(an_order_resolver):
    with pytest.raises(CommandError) as refused:
        trace("order-42")
    assert refused.value.returncode == 2
    assert str(refused.value) == (
        "'order-42' is not a UUID: give the id of an event, a workflow (its correlation id) or an order."
    )


@pytest.mark.django_db(transaction=True)
def test_run_from_the_shell_a_trace_prints_and_an_unknown_id_exits_2_with_one_line(no_live_outbox):
    # given a committed workflow
    flow = make_workflow()
    # when
    found, unknown = manage("outbox_trace", str(flow.correlation_id)), manage("outbox_trace", str(uuid.UUID(int=7)))
    # then
    assert (found.returncode, found.stderr) == (0, "")
    assert f"probe.Broke v1 #{flow.broke.id}" in found.stdout
    assert unknown.returncode == 2
    [line] = unknown.stderr.splitlines()
    assert line.startswith(f"CommandError: Nothing has the id {uuid.UUID(int=7)}: it is not the id of an event")


# the admin


def test_an_events_admin_page_lists_each_failed_attempt_and_the_deliverys_page_has_them_inline(admin_client):
    # given a workflow whose flaky delivery failed twice before it succeeded
    flow = make_workflow()
    flaky = Delivery.objects.get(event=flow.flaked)
    # when
    event_page = admin_client.get(reverse("admin:outbox_outboxevent_change", args=[flow.root.id])).content.decode()
    delivery_page = admin_client.get(reverse("admin:outbox_delivery_change", args=[flaky.id])).content.decode()
    # then the tree lists both attempts with their errors
    tree = event_page[event_page.index('<div class="causal-tree">') :]
    for n in (1, 2):
        assert re.search(
            rf"attempt {n} failed at [\d:.]+, handler error \[RuntimeError\]: RuntimeError: flaky, {n} more", tree
        )
    # and the delivery's page shows them read-only
    assert "Failed attempts" in delivery_page
    assert "RuntimeError: flaky, 1 more" in delivery_page
    assert 'name="failures-0-error"' not in delivery_page


@pytest.mark.parametrize(("perms", "shown"), [(("outbox.view_delivery",), True), (("outbox.view_outboxevent",), False)])
def test_whoever_may_see_a_delivery_sees_its_failed_attempts_and_no_one_else(client, perms, shown):
    # given staff who may view deliveries, or only events
    flaky = Delivery.objects.get(event=make_workflow().flaked)
    client.force_login(make_user("vic", staff=True, perms=perms))
    # when
    page = client.get(reverse("admin:outbox_delivery_change", args=[flaky.id]))
    # then
    assert page.status_code == (200 if shown else 403)
    assert ("RuntimeError: flaky, 1 more" in page.content.decode()) is shown


def test_an_events_admin_page_shows_its_workflow_and_says_when_it_shows_only_the_first_events(
    admin_client, monkeypatch
):
    # given a workflow of four events, and pages that show at most two
    flow = make_workflow()
    monkeypatch.setattr(outbox_admin, "TREE_SHOWN", 2)
    # when
    page = admin_client.get(reverse("admin:outbox_outboxevent_change", args=[flow.root.id])).content.decode()
    # then
    assert "<b>probe.Flaked</b>" in page
    assert "<b>probe.Broke</b>" not in page
    assert (
        "The first 2 of the workflow's 4 events:\n"
        f"  <code>python manage.py outbox_trace {flow.correlation_id}</code> prints them all." in page
    )
