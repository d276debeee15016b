"""OpenTelemetry (config/telemetry.py, outbox/telemetry.py): one trace from the request through every handler.

The chain is proved here with the SDK's in-memory exporter: the order is
placed and confirmed over the API (Django's test client, traced by the
official Django instrumentation) and its deliveries run in this process by
the outbox's own runner (tests/support/workflow.py). The same chain across
real processes (gunicorn, a relay and a worker exporting OTLP) is
tests/flows/test_telemetry.py.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from config import telemetry
from orders.models import Order
from outbox import telemetry as outbox_telemetry
from outbox.models import Delivery, OutboxEvent
from outbox.runner import run_deliveries
from tests.factories import ADDRESS, make_product, place_order
from tests.support.users import make_user, token_client
from tests.support.workflow import run_until_settled

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    """Tracing on in this process, every finished span kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.instrument(provider)
    yield exporter
    telemetry.uninstrument()


def place_and_confirm(client, product) -> Order:
    body = {"lines": [{"sku": product.sku, "quantity": 1}], "shipping_address": ADDRESS, "payment_token": "tok_visa"}
    placed = client.post("/api/orders/", body, format="json")
    assert placed.status_code == 201, placed.json()
    confirmed = client.post(f"/api/orders/{placed.json()['id']}/confirm/", HTTP_TRACEPARENT=TRACEPARENT)
    assert confirmed.status_code == 202, confirmed.json()
    return Order.objects.get(id=placed.json()["id"])


def traceparent_of(span: ReadableSpan) -> str:
    return f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


def test_one_trace_runs_from_the_confirm_request_through_every_handler_to_the_order_shipped(spans):
    # given a customer, and a product in stock
    client = token_client(make_user("alice"))
    product = make_product(on_hand=5)
    # when the customer places and confirms an order over the API (the caller sends its own trace context),
    # and the outbox runs every delivery it leads to
    order = place_and_confirm(client, product)
    run_until_settled(order.correlation_id)
    order.refresh_from_db()
    assert order.status == Order.Status.SHIPPED, order.cancel_reason
    # then every event from the confirmation on was published in a span of the caller's trace,
    # whose context the event stores
    finished = spans.get_finished_spans()
    by_id = {span.context.span_id: span for span in finished}
    outbox = [s for s in finished if s.attributes.get("messaging.system") == "outbox"]
    published = {s.attributes["messaging.message.id"]: s for s in outbox if s.kind is SpanKind.PRODUCER}
    events = list(OutboxEvent.objects.filter(correlation_id=order.correlation_id).order_by("id"))
    confirmed = next(e for e in events if e.type == "orders.OrderConfirmed")
    flow = [e for e in events if e.id >= confirmed.id]
    assert "orders.OrderShipped" in [e.type for e in flow]
    trace_id = int(TRACEPARENT.split("-")[1], 16)
    for event in flow:
        span = published[str(event.event_id)]
        assert span.name == f"publish {event.type}"
        assert span.context.trace_id == trace_id, event.type
        assert event.traceparent == traceparent_of(span)
    # and the confirmation's under the request's span, itself under the caller's
    request = by_id[published[str(confirmed.event_id)].parent.span_id]
    assert request.kind is SpanKind.SERVER
    assert "confirm/" in request.attributes["http.route"]
    assert request.parent.is_remote
    assert request.parent.span_id == int(TRACEPARENT.split("-")[2], 16)
    # and each delivery ran in a span under its event's publish span
    processed = {
        (s.attributes["messaging.message.id"], s.attributes["outbox.handler"]): s
        for s in outbox
        if s.kind is SpanKind.CONSUMER
    }
    deliveries = Delivery.objects.filter(event__in=flow).select_related("event")
    assert {d.status for d in deliveries} == {Delivery.Status.DONE}
    for delivery in deliveries:
        span = processed[(str(delivery.event.event_id), delivery.handler)]
        assert span.parent.span_id == published[str(delivery.event.event_id)].context.span_id, delivery.handler
        assert span.context.trace_id == trace_id
    # and each event a handler published under the span of that handler's run of its cause
    for event in flow:
        if event.id == confirmed.id:
            continue
        parent = by_id[published[str(event.event_id)].parent.span_id]
        assert parent.kind is SpanKind.CONSUMER, event.type
        assert parent.attributes["messaging.message.id"] == str(event.causation_id), event.type
    # down to the order shipped and the handlers of that
    shipped = next(e for e in flow if e.type == "orders.OrderShipped")
    handlers = {h for (event_id, h) in processed if event_id == str(shipped.event_id)}
    assert handlers == set(deliveries.filter(event=shipped).values_list("handler", flat=True))
    assert handlers


def test_a_handler_that_fails_leaves_its_error_on_its_span(spans):
    # given a confirmed order whose card network times out (twice, then it answers)
    order = place_order(lines=[(make_product(), 1)], token="tok_flaky", confirm=True)
    payment = Delivery.objects.get(event__correlation_id=order.correlation_id, handler="payments.authorise_payment")
    # when its payment's delivery runs
    report = run_deliveries([payment.id])
    assert report.failed == [payment.id]
    # then the run's span says it failed, and why
    [span] = [s for s in spans.get_finished_spans() if s.attributes.get("outbox.handler") == payment.handler]
    assert not span.status.is_ok
    assert [e.name for e in span.events] == ["exception"]
    assert "GatewayUnavailable" in span.events[0].attributes["exception.type"]


def test_off_the_event_keeps_the_requests_traceparent_and_no_span_is_made():
    # given tracing off (the default): the outbox's span helpers are one shared no-op
    assert not outbox_telemetry.enabled()
    event = OutboxEvent(type="orders.OrderPlaced", traceparent=TRACEPARENT)
    assert outbox_telemetry.publishing(event) is outbox_telemetry.delivering(event, "h", 1)
    # when an order is placed over the API with a caller's trace context
    client = token_client(make_user("bob"))
    lines = [{"sku": make_product().sku, "quantity": 1}]
    body = {"lines": lines, "shipping_address": ADDRESS, "payment_token": "tok_visa"}
    placed = client.post("/api/orders/", body, format="json", HTTP_TRACEPARENT=TRACEPARENT)
    # then its event stores the header as it came
    assert placed.status_code == 201
    assert OutboxEvent.objects.get(type="orders.OrderPlaced").traceparent == TRACEPARENT


@pytest.mark.parametrize(
    ("names", "kinds"),
    [
        ("otlp", [OTLPSpanExporter]),
        ("console,otlp", [ConsoleSpanExporter, OTLPSpanExporter]),
        ("none", []),
    ],
)
def test_the_exporters_are_those_otel_traces_exporter_names(monkeypatch, names, kinds):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", names)
    assert [type(e) for e in telemetry.exporters_from_environment()] == kinds


def test_an_exporter_no_package_provides_stops_start_up_saying_which_are_known(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with pytest.raises(ImproperlyConfigured, match=r"'jaeger', which no installed package provides; known: .*otlp"):
        telemetry.exporters_from_environment()


def test_off_configure_sets_up_nothing(settings):
    settings.OTEL_ENABLED = False
    assert telemetry.configure() is None
    assert not outbox_telemetry.enabled()
