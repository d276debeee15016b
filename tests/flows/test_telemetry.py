"""Acceptance: with ``OTEL_ENABLED``, one trace runs from the HTTP request through the relay and real workers.

Every process exports OTLP over HTTP, as it would to Jaeger or Tempo, to a
collector in this test (tests/support/otlp.py): gunicorn serving the API, a
relay (``manage.py outbox_relay``) and a Celery worker (its pool processes
set up tracing on ``worker_process_init``). Publishing leaves every event to
the relay (``OUTBOX_DISPATCH_ON_COMMIT=false``), so each delivery's task was
sent by a relay pass, whose span the delivery's span links to.
"""

from dataclasses import dataclass

import pytest

from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from tests.factories import ADDRESS, make_product
from tests.support.otlp import CollectedSpan, OtlpCollector
from tests.support.processes import ChildProcess, start_relay, start_worker, wait_for
from tests.support.rest import ShopClient
from tests.support.users import PASSWORD, make_user
from tests.support.web import WebServer, start_web

pytestmark = [pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]), pytest.mark.workers]

CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.fixture
def collector():
    collector = OtlpCollector().start()
    yield collector
    collector.stop()


@pytest.fixture
def traced(no_live_outbox, collector):
    """Web, relay and worker, each exporting its spans to the collector within a tenth of a second."""
    env = {
        "OTEL_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OUTBOX_DISPATCH_ON_COMMIT": "false",
    }
    relay = start_relay(OTEL_SERVICE_NAME="oms-relay", **env)
    worker = start_worker(OTEL_SERVICE_NAME="oms-worker", **env)
    web = start_web(OTEL_SERVICE_NAME="oms-web", **env)
    yield Traced(web, relay, worker)
    for process in (web, relay, worker):
        process.stop()


@dataclass
class Traced:
    web: WebServer
    relay: ChildProcess
    worker: ChildProcess

    def logs(self) -> str:
        others = (f"--- {p.name} ---\n{p.output()[-4000:]}" for p in (self.relay, self.worker))
        return "\n".join([self.web.logs(), *others])


def outbox_spans(spans: list[CollectedSpan], kind: str) -> dict[str, CollectedSpan]:
    """The outbox's own spans of a kind, by event id (and handler, for a delivery's)."""
    return {
        "/".join(filter(None, [s.attributes["messaging.message.id"], s.attributes.get("outbox.handler")])): s
        for s in spans
        if s.kind == kind and s.attributes.get("messaging.system") == "outbox"
    }


def ancestors(span: CollectedSpan, by_id: dict[str, CollectedSpan]) -> list[CollectedSpan]:
    chain = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


def settled(order: Order) -> bool:
    """Shipped, every event relayed, every delivery finished: nothing more will happen."""
    events = OutboxEvent.objects.filter(correlation_id=order.correlation_id)
    unfinished = Delivery.objects.filter(event__in=events, status__in=Delivery.UNFINISHED)
    shipped = Order.objects.filter(id=order.id, status=Order.Status.SHIPPED)
    return shipped.exists() and not events.filter(relayed_at__isnull=True).exists() and not unfinished.exists()


def exported(spans: list[CollectedSpan], deliveries: list[Delivery]) -> bool:
    """Whether each delivery's span is in, and the spans its link leads up to, as far as a relay pass."""
    processed, by_id = outbox_spans(spans, "consumer"), {s.span_id: s for s in spans}
    for key in (f"{d.event.event_id}/{d.handler}" for d in deliveries):
        span = processed.get(key)
        task = by_id.get(span.links[0][1]) if span and span.links else None
        if task is None or "outbox relay pass" not in [s.name for s in ancestors(task, by_id)]:
            return False
    return True


def test_one_trace_runs_from_the_request_through_the_relay_and_the_workers_to_the_order_shipped(traced, collector):
    # given a customer signed in over HTTP, and a product in stock
    make_user("alice")
    product = make_product(on_hand=5)
    shop = ShopClient(traced.web.url).sign_in("alice", PASSWORD)
    # when the customer places an order, and confirms it in a trace of the caller's
    placed = shop.place_order([(product.sku, 1)], ADDRESS, "tok_visa")
    assert placed.status == 201, placed.data
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    confirmed = shop.request("POST", f"/api/orders/{placed.data['id']}/confirm/", headers={"traceparent": traceparent})
    assert confirmed.status == 202, confirmed.data
    # then the order ships, and every process exports the spans of its part
    order = Order.objects.get(id=placed.data["id"])
    wait_for(lambda: settled(order), timeout=60, what=lambda: traced.logs())
    flow = list(OutboxEvent.objects.filter(correlation_id=order.correlation_id).exclude(type="orders.OrderPlaced"))
    deliveries = list(Delivery.objects.filter(event__in=flow).select_related("event"))
    wait_for(lambda: exported(collector.collected(), deliveries), timeout=30, what="the spans of every delivery")
    spans = collector.collected()
    by_id = {s.span_id: s for s in spans}
    published, processed = outbox_spans(spans, "producer"), outbox_spans(spans, "consumer")
    assert "orders.OrderShipped" in {e.type for e in flow}
    # and each event stores the context of its publish span, in the caller's trace: the confirmation's,
    # in the web's request span under the caller's span; the others', in the worker's run of their cause
    for event in flow:
        span = published[str(event.event_id)]
        assert event.traceparent == f"00-{CALLER_TRACE}-{span.span_id}-01", event.type
        parent = by_id[span.parent_span_id]
        if event.type == "orders.OrderConfirmed":
            assert (span.service, parent.service, parent.kind) == ("oms-web", "oms-web", "server")
            assert parent.parent_span_id == CALLER_SPAN
        else:
            assert (span.service, parent.service) == ("oms-worker", "oms-worker")
            assert parent.attributes["messaging.message.id"] == str(event.causation_id), event.type
    # and each delivery ran in the worker, in a span under its event's publish span, linked to the Celery task
    # that carried it, which a relay pass sent
    for delivery in deliveries:
        span = processed[f"{delivery.event.event_id}/{delivery.handler}"]
        assert (span.service, span.trace_id) == ("oms-worker", CALLER_TRACE)
        assert span.parent_span_id == published[str(delivery.event.event_id)].span_id
        [(_, task_span_id)] = span.links
        task = by_id[task_span_id]
        assert task.name == "run/outbox.run_deliveries"
        assert "outbox relay pass" in [s.name for s in ancestors(task, by_id)]
