"""A downstream outage longer than every attempt would last, through a real relay and worker: nothing dies."""

import time
import uuid

import pytest
from django.db import transaction

from outbox.models import Delivery, HandlerCircuit
from outbox.publishing import publish
from tests.outbox.probe.events import Called
from tests.outbox.probe.models import Effect
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]
HANDLER = "probe.call_downstream"  # 3 attempts, 0.1 s backoff doubling to 0.4 s: all of them take under a second
OUTAGE_SECONDS = 8


def _state(reopened: set | None = None) -> str:
    circuit = HandlerCircuit.objects.filter(handler=HANDLER).first()
    if circuit and circuit.state == "open" and reopened is not None:
        reopened.add(circuit.retry_at)  # each failed probe opens it again with a later retry_at
    return circuit.state if circuit else "closed"


def test_a_downstream_down_for_longer_than_all_attempts_ends_with_no_dead_letter_and_each_delivery_done_once(
    live_outbox, downstream
):
    # given the handler's downstream service is down
    downstream.stop()
    # when twelve events arrive for it
    for seq in range(12):
        with transaction.atomic():
            publish(Called(thing_id=uuid.uuid4(), seq=seq))
    wait_for(lambda: _state() == "open", timeout=20, what=live_outbox.logs)
    # and the outage lasts eight times longer than all three attempts would
    seen, cool_downs, outage_ends = {"open"}, set(), time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < outage_ends:
        seen.add(_state(cool_downs))
        assert not Delivery.objects.filter(handler=HANDLER, status="dead").exists(), live_outbox.logs()
        time.sleep(0.05)
    # then the service comes back
    downstream.start()

    def all_done() -> bool:
        seen.add(_state())
        return Delivery.objects.filter(handler=HANDLER, status="done").count() == 12

    wait_for(all_done, timeout=30, what=live_outbox.logs)
    # then every delivery ran once to completion, none died
    assert not Delivery.objects.filter(handler=HANDLER, status="dead").exists()
    effects = list(Effect.objects.filter(handler="downstream").values_list("event_id", flat=True))
    assert len(effects) == len(set(effects)) == 12
    # and the breaker was open, let probes through that failed and opened it for another 1 s cool-down (a
    # half-open spell lasts only as long as a refused connection, too short to be sampled), then closed
    assert "open" in seen
    assert len(cool_downs) >= 3, cool_downs
    circuit = HandlerCircuit.objects.get(handler=HANDLER)
    assert (circuit.state, circuit.consecutive_failures) == ("closed", 0)
    assert max(Delivery.objects.filter(handler=HANDLER).values_list("attempts", flat=True)) <= 3
