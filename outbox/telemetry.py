"""OpenTelemetry spans of the outbox's own: each publish, each relay pass, each delivery's run.

One trace follows a workflow through the outbox: ``publish`` opens a span
under whatever span is current (the HTTP request's, or the delivery of the
event being handled) and stores that span's W3C context in the event's
``traceparent``, written by the official propagator. A delivery's span is
the child of the context its event stored, and links to the span current
where it runs (the Celery task that carried it), so the events a handler
publishes are, in turn, children of that delivery.

Only the OpenTelemetry API is used here: the SDK, its exporters and the
libraries' instrumentations are the deployment's to set up (in Django, the
project's composition root), and it then calls :func:`enable`. Until it
does, every helper here returns a shared no-op context at the cost of one
check, and ``traceparent`` stays what the request's header said.
"""

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from .models import OutboxEvent

SYSTEM = "outbox"  # messaging.system of the spans (the outbox is the transport)
_propagator = TraceContextTextMapPropagator()
_off: AbstractContextManager[None] = nullcontext()
_tracer: trace.Tracer | None = None


def enable(tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace the outbox from now on, with ``tracer_provider`` (by default the global one)."""
    global _tracer
    _tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)


def disable() -> None:
    global _tracer
    _tracer = None


def enabled() -> bool:
    return _tracer is not None


def publishing(row: "OutboxEvent") -> AbstractContextManager[Span | None]:
    """A span for publishing ``row``, whose context ``row.traceparent`` takes (a no-op when tracing is off)."""
    if _tracer is None:
        return _off
    span = _tracer.start_span(
        f"publish {row.type}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": row.type,
            "messaging.message.id": str(row.event_id),
            "messaging.message.conversation_id": str(row.correlation_id),
        },
    )
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    row.traceparent = carrier.get("traceparent", row.traceparent)
    return trace.use_span(span, end_on_exit=True)


def delivering(event: "OutboxEvent", handler: str, attempt: int) -> AbstractContextManager[Span | None]:
    """A span for ``handler``'s run of ``event``: the child of the context the event stored, current meanwhile.

    An event stored without a context (published with tracing off) gets a
    span under the current one instead. A handler's exception is recorded on
    the span, and sets its status, on its way out.
    """
    if _tracer is None:
        return _off
    current = trace.get_current_span().get_span_context()
    parent = _propagator.extract({"traceparent": event.traceparent}) if event.traceparent else None
    return _tracer.start_as_current_span(
        f"process {event.type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=[Link(current)] if parent is not None and current.is_valid else None,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": event.type,
            "messaging.message.id": str(event.event_id),
            "messaging.message.conversation_id": str(event.correlation_id),
            "outbox.handler": handler,
            "outbox.attempt": attempt,
        },
    )


def relaying() -> AbstractContextManager[Span | None]:
    """A span for one relay pass (its counts are set by :func:`relayed`)."""
    if _tracer is None:
        return _off
    return _tracer.start_as_current_span("outbox relay pass", attributes={"messaging.system": SYSTEM})


def relayed(span: Span | None, *, fanned_out: int, dispatched: int, dead: int) -> None:
    if span is not None:
        span.set_attributes({"outbox.fanned_out": fanned_out, "outbox.dispatched": dispatched, "outbox.dead": dead})
