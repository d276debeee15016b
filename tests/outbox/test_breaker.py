"""Circuit breakers and the pause switch, in-process: the runner's and the relay's part, step by step."""

import uuid

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models.functions import Now

from outbox import breaker
from outbox.models import Delivery, HandlerCircuit
from outbox.publishing import publish
from outbox.relay import dispatch_due, fan_out
from outbox.runner import run_deliveries
from tests.outbox.probe.events import Called
from tests.outbox.probe.models import Effect
from tests.support.deliveries import statuses_and_attempts as statuses

pytestmark = pytest.mark.django_db
HANDLER = "probe.call_downstream"  # breaker_threshold=3, breaker_cooldown=1, max_attempts=3


def _calls(count: int) -> list[Delivery]:
    with transaction.atomic():
        rows = [publish(Called(thing_id=uuid.uuid4(), seq=n)) for n in range(count)]
    fan_out(batch_size=100)
    return [Delivery.objects.get(event=row, handler=HANDLER) for row in rows]


def _run_each(deliveries: list[Delivery]) -> None:
    for delivery in deliveries:
        run_deliveries([delivery.id])


def _circuit() -> HandlerCircuit:
    return HandlerCircuit.objects.get(handler=HANDLER)


def test_three_failures_in_a_row_across_deliveries_open_the_circuit_and_park_the_rest(downstream):
    # given the downstream is down and five deliveries were dispatched
    downstream.stop()
    deliveries = _calls(5)
    # when a worker runs them one after another
    _run_each(deliveries)
    # then three failed (one attempt each), the circuit opened, and the last two were parked unstarted
    circuit = _circuit()
    assert (circuit.state, circuit.consecutive_failures, circuit.times_opened) == ("open", 3, 1)
    assert "URLError" in circuit.last_error
    assert statuses(deliveries) == [("pending", 1)] * 3 + [("pending", 0)] * 2


def test_a_success_resets_the_count(downstream):
    downstream.stop()
    failing = _calls(2)
    _run_each(failing)
    assert _circuit().consecutive_failures == 2
    downstream.start()
    _run_each(_calls(1))
    assert (_circuit().state, _circuit().consecutive_failures) == ("closed", 0)


def test_a_batch_stops_running_a_handler_whose_circuit_it_opened(downstream):
    # given five deliveries of the downstream handler in one batch, and the downstream down
    downstream.stop()
    deliveries = _calls(5)
    # when one task runs them all
    report = run_deliveries([d.id for d in deliveries])
    # then the third failure tripped the breaker: the last two were handed back, no attempt spent
    assert len(report.failed) == 3
    assert len(report.handed_back) == 2
    assert sorted(statuses(deliveries)) == [("pending", 0)] * 2 + [("pending", 1)] * 3
    assert _circuit().state == "open"


def test_an_open_circuit_gets_nothing_from_the_relay_until_its_cool_down_then_one_probe(downstream):
    # given an open circuit whose cool-down has not passed, and due deliveries of its handler
    downstream.stop()
    deliveries = _calls(5)
    _run_each(deliveries)
    Delivery.objects.filter(id__in=[d.id for d in deliveries]).update(due_at=Now())
    # when the relay sweeps
    assert dispatch_due(batch_size=100).dispatched == 0
    # and once the cool-down has passed
    HandlerCircuit.objects.filter(handler=HANDLER).update(retry_at=Now())
    stats = dispatch_due(batch_size=100)
    # then exactly one delivery goes, as the probe, and the circuit is half-open
    circuit = _circuit()
    assert stats.dispatched == 1
    assert circuit.state == "half_open"
    assert Delivery.objects.get(id=circuit.probe_delivery_id).status == "dispatched"
    assert dispatch_due(batch_size=100).dispatched == 0  # nothing more while the probe is under way


def test_a_probe_that_fails_reopens_the_circuit_and_is_not_charged(downstream):
    downstream.stop()
    _run_each(_calls(4))
    HandlerCircuit.objects.filter(handler=HANDLER).update(retry_at=Now())
    Delivery.objects.filter(handler=HANDLER).update(due_at=Now())
    dispatch_due(batch_size=100)
    probe = Delivery.objects.get(id=_circuit().probe_delivery_id)
    attempts_before = probe.attempts
    # when the probe runs and fails
    run_deliveries([probe.id])
    # then its attempt is given back, and the circuit is open for another cool-down
    probe.refresh_from_db()
    assert (probe.status, probe.attempts) == ("pending", attempts_before)
    assert "not counted as an attempt: the circuit of probe.call_downstream is half-open" in probe.last_error
    assert (_circuit().state, _circuit().times_opened) == ("open", 1)


def test_a_probe_that_succeeds_closes_the_circuit_and_the_rest_flow(downstream):
    downstream.stop()
    deliveries = _calls(4)
    _run_each(deliveries)
    HandlerCircuit.objects.filter(handler=HANDLER).update(retry_at=Now())
    Delivery.objects.filter(handler=HANDLER).update(due_at=Now())
    dispatch_due(batch_size=100)
    downstream.start()
    # when the probe succeeds
    run_deliveries([_circuit().probe_delivery_id])
    # then the circuit closes and the relay sends every other waiting delivery
    assert _circuit().state == "closed"
    assert dispatch_due(batch_size=100).dispatched == 3
    _run_each(deliveries)
    assert {status for status, _ in statuses(deliveries)} == {"done"}
    assert Effect.objects.filter(handler="downstream").count() == 4


def test_new_events_of_a_blocked_handler_are_fanned_out_pending():
    breaker.handler_pause(handler=HANDLER)
    deliveries = _calls(2)
    assert statuses(deliveries) == [("pending", 0)] * 2
    assert Delivery.objects.filter(event__type="probe.Called").exclude(handler=HANDLER).count() == 0


def test_a_paused_handler_gets_nothing_until_resumed(downstream):
    # given a paused handler with a delivery already in the broker
    deliveries = _calls(1)
    call_command("outbox_handler", "pause", HANDLER)
    # when a worker gets the message, and the relay sweeps
    run_deliveries([deliveries[0].id])
    swept = dispatch_due(batch_size=100)
    # then the delivery is parked, unstarted, and not sent again
    assert statuses(deliveries) == [("pending", 0)]
    assert swept.dispatched == 0
    # when resumed
    call_command("outbox_handler", "resume", HANDLER)
    assert dispatch_due(batch_size=100).dispatched == 1
    run_deliveries([deliveries[0].id])
    assert statuses(deliveries) == [("done", 1)]


def test_failures_of_other_deliveries_while_the_circuit_is_open_are_not_charged(downstream):
    # given an open circuit, and a delivery that started before it opened (already in a worker)
    downstream.stop()
    late = _calls(1)[0]
    _run_each(_calls(3))
    assert _circuit().state == "open"
    # when that delivery's message is run now, it is parked; had it started, its failure is not charged
    run_deliveries([late.id])
    late.refresh_from_db()
    assert (late.status, late.attempts) == ("pending", 0)


def test_a_held_back_delivery_whose_lease_ran_out_unstarted_waits_instead_of_being_sent_again():
    # given a paused handler with a delivery dispatched before the pause, its message lost, its lease run out
    deliveries = _calls(1)
    breaker.handler_pause(handler=HANDLER)
    Delivery.objects.filter(id=deliveries[0].id).update(due_at=Now())
    # when the relay sweeps
    stats = dispatch_due(batch_size=100)
    # then it is parked, pending, with no token: not sent again while the handler is held back
    assert stats.dispatched == stats.resent == 0
    delivery = Delivery.objects.get(id=deliveries[0].id)
    assert (delivery.status, delivery.attempts, delivery.dispatch_token) == ("pending", 0, None)
