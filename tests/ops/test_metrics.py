"""GET /metrics: the outbox's state and work in Prometheus text format, for the scraper only."""

import datetime as dt
import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from outbox.metrics import EVENTS_PUBLISHED, HANDLER_SECONDS, exposition, record_deliveries_done
from outbox.models import Delivery, HandlerCircuit
from outbox.publishing import publish
from outbox.relay import fan_out
from tests.outbox.probe.events import Stepped

pytestmark = pytest.mark.django_db


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_show_unfinished_and_dead_deliveries_per_handler(client, make_delivery):
    # given deliveries of one handler in each state, the oldest pending one ten minutes old
    old = make_delivery(handler="probe.record_a", status="pending")
    type(old).objects.filter(id=old.id).update(created_at=timezone.now() - dt.timedelta(minutes=10))
    make_delivery(handler="probe.record_a", status="dispatched")
    make_delivery(handler="probe.record_a", status="dead")
    make_delivery(handler="probe.record_a", status="dead", resolved_at=timezone.now())  # discarded
    make_delivery(handler="probe.record_a", status="done")
    # when
    response = client.get("/metrics")
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.content.decode())
    handler = (("handler", "probe.record_a"),)
    assert found[("outbox_deliveries", (*handler, ("status", "pending")))] == 1
    assert found[("outbox_deliveries", (*handler, ("status", "dispatched")))] == 1
    assert found[("outbox_deliveries", (*handler, ("status", "dead")))] == 1
    assert found[("outbox_dead_letters", handler)] == 1
    assert 600 <= found[("outbox_oldest_pending_delivery_age_seconds", handler)] < 660


def test_every_subscribed_handler_is_listed_even_when_idle(client):
    found = samples(client.get("/metrics").content.decode())
    idle = (("handler", "probe.record_c"),)
    assert found[("outbox_dead_letters", idle)] == 0
    assert found[("outbox_oldest_pending_delivery_age_seconds", idle)] == 0
    assert found[("outbox_held_deliveries", (("handler", "probe.record_step"),))] == 0


def test_the_table_figures_cost_three_small_queries_per_scrape_none_reading_done_rows(make_delivery):
    # given
    for status in ("pending", "dead", "done"):
        make_delivery(status=status)
    # when
    with CaptureQueriesContext(connection) as queries:
        exposition()
    # then: one grouped query over the rows not done (the partial index), never the done ones
    assert len(queries) == 3
    grouped, circuits, held = (q["sql"] for q in queries)
    assert "NOT" in grouped
    assert "'done'" in grouped
    # one over the circuits (a row per handler at most)
    assert '"outbox_handler_circuit"' in circuits
    assert '"outbox_delivery"' not in circuits
    # and one over pending deliveries of ordered handlers on aggregates with a dead letter
    assert "'pending'" in held
    assert "'dead'" in held
    assert '"ordering_key" IS NOT NULL' in held
    assert "'done'" not in held


def test_each_handlers_circuit_state_is_shown(client):
    # given one open circuit and one paused handler
    HandlerCircuit.objects.create(handler="probe.call_downstream", state="open", consecutive_failures=3)
    HandlerCircuit.objects.create(handler="probe.record_a", paused=True)
    # when
    found = samples(client.get("/metrics").content.decode())

    # then
    def state(handler: str, name: str) -> float:
        return found[("outbox_circuit_state", (("handler", handler), ("state", name)))]

    assert (state("probe.call_downstream", "open"), state("probe.call_downstream", "closed")) == (1, 0)
    assert (state("probe.record_a", "paused"), state("probe.record_a", "closed")) == (1, 0)
    assert state("probe.record_c", "closed") == 1
    assert found[("outbox_circuit_consecutive_failures", (("handler", "probe.call_downstream"),))] == 3


def test_deliveries_held_behind_a_dead_letter_are_counted_per_ordered_stop_handler(client):
    # given steps 1..3 of one thing to the ordered probe.record_step, step 1 dead
    thing = uuid.uuid4()
    with transaction.atomic():
        steps = [publish(Stepped(thing_id=thing, seq=n)) for n in (1, 2, 3)]
    fan_out(batch_size=10)
    Delivery.objects.filter(event=steps[0]).update(status="dead")
    # when
    found = samples(client.get("/metrics").content.decode())
    # then the two others are held; a handler that is not ordered has no such gauge
    assert found[("outbox_held_deliveries", (("handler", "probe.record_step"),))] == 2
    assert ("outbox_held_deliveries", (("handler", "probe.record_a"),)) not in found


def test_counters_and_histograms_recorded_in_this_process_are_shown(client):
    # given
    EVENTS_PUBLISHED.labels("probe.Pinged").inc()
    HANDLER_SECONDS.labels("probe.record_a").observe(0.003)
    record_deliveries_done(["probe.record_a"])
    # when
    found = samples(client.get("/metrics").content.decode())
    # then
    assert found[("outbox_events_published_total", (("type", "probe.Pinged"),))] >= 1
    assert found[("outbox_deliveries_done_total", (("handler", "probe.record_a"),))] >= 1
    assert found[("outbox_handler_duration_seconds_count", (("handler", "probe.record_a"),))] >= 1
    assert found[("outbox_handler_duration_seconds_bucket", (("handler", "probe.record_a"), ("le", "0.005")))] >= 1


# who may read


def test_without_a_token_only_this_host_may_read(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 403
    assert b"set METRICS_TOKEN" in refused.content


def test_a_request_relayed_by_a_proxy_on_this_host_is_not_local(client):
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert response.status_code == 403


def test_with_a_token_set_the_scraper_must_send_it_from_anywhere(client, settings):
    # given
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    # then
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="s3cret-scrape-token").status_code == 401
    refused = client.get("/metrics")
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    allowed = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert allowed.status_code == 200


def test_metrics_only_answer_reads(client):
    assert client.post("/metrics").status_code == 405
