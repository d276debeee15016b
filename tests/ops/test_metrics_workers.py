"""What workers and the relay record reaches the web process's /metrics (multiprocess mode)."""

import uuid

import pytest
from django.db import transaction

from outbox.metrics import exposition
from outbox.models import Delivery
from outbox.publishing import publish
from tests.ops.test_metrics import samples
from tests.outbox.probe.events import Pinged
from tests.support.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.workers]


def counts() -> dict:
    found = samples(exposition().decode())
    return {
        "published": found.get(("outbox_events_published_total", (("type", "probe.Pinged"),)), 0),
        "handled": found.get(("outbox_handler_duration_seconds_count", (("handler", "probe.record_a"),)), 0),
        "done": found.get(("outbox_deliveries_done_total", (("handler", "probe.record_a"),)), 0),
        "relay batches": found.get(("outbox_relay_batch_duration_seconds_count", ()), 0),
    }


def test_counters_recorded_by_the_relay_and_workers_are_shown_by_this_process(live_outbox):
    # given what the metrics say before
    before = counts()
    # when an event is published and handled by the real relay and worker processes
    with transaction.atomic():
        event = publish(Pinged(thing_id=uuid.uuid4()))
    try:
        wait_for(lambda: Delivery.objects.filter(event=event, status="done").count() == 3, timeout=20, what="handlers")
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{live_outbox.logs()}") from None
    # then this process, which neither relayed nor handled it, counts both
    after = wait_for(lambda: (c := counts())["done"] > before["done"] and c, timeout=5, what="the metrics")
    assert after["published"] == before["published"] + 1
    assert after["handled"] == before["handled"] + 1
    assert after["done"] == before["done"] + 1
    assert after["relay batches"] > before["relay batches"]
