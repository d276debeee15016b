"""OpenTelemetry for the project's processes: on with ``OTEL_ENABLED``, configured by the standard ``OTEL_*`` variables.

Called where a process starts serving: the WSGI and ASGI applications, each
Celery pool process (``worker_process_init``: the SDK's export thread does
not survive a fork, so each child sets up its own), and ``manage.py`` for
the commands that relay or run handlers. It sets up the SDK, the official
Django, Celery and psycopg instrumentations, and the outbox's own spans
(outbox/telemetry.py), so that one trace runs from an HTTP request through
the outbox to every handler and the events they publish.

The SDK reads its own variables: ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (the resource), ``OTEL_TRACES_SAMPLER`` and
``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the other
``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*`` (batching). ``OTEL_TRACES_EXPORTER``
(comma-separated: ``otlp``, ``console``, ``none``; default ``otlp``) picks
the exporters by their registered entry-point names, as
``opentelemetry-instrument`` does; ``otlp`` is OTLP over HTTP/protobuf.
"""

import os
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import django
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace

from outbox import telemetry as outbox_telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

EXPORTER_GROUP = "opentelemetry_traces_exporter"
# OTEL_TRACES_EXPORTER's ``otlp`` is the spec's default protocol, HTTP/protobuf (the only one installed).
ALIASES = {"otlp": "otlp_proto_http"}
# manage.py commands that relay events or run handlers, and so are traced like a worker.
TRACED_COMMANDS = frozenset({"outbox_relay", "outbox_replay"})
_provider: "TracerProvider | None" = None


def configure() -> "TracerProvider | None":
    """With ``OTEL_ENABLED``, trace this process (once) and return its provider; else nothing, at no cost.

    The SDK and the instrumentations are imported only then: a process with
    tracing off loads none of them.
    """
    global _provider
    if not settings.OTEL_ENABLED or _provider is not None:
        return _provider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()  # its resource and sampler from OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER...
    for exporter in exporters_from_environment():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    instrument(provider)
    _provider = provider
    return provider


def configure_for_command(argv: list[str]) -> None:
    """``manage.py``: trace the commands that relay events (``runserver`` is traced through ``config.wsgi``)."""
    if len(argv) > 1 and argv[1] in TRACED_COMMANDS:
        django.setup()  # as the command would, a moment later: the settings and apps configure() needs
        configure()


def instrument(provider: trace.TracerProvider) -> None:
    """Send the spans of Django, Celery, psycopg and the outbox to ``provider``.

    Django's must come before the first request builds the middleware chain
    (it adds a middleware to ``MIDDLEWARE``).
    """
    for instrumentor in _instrumentors():
        instrumentor.instrument(tracer_provider=provider)
    outbox_telemetry.enable(provider)


def uninstrument() -> None:
    outbox_telemetry.disable()
    for instrumentor in _instrumentors():
        instrumentor.uninstrument()


def _instrumentors() -> list:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    return [DjangoInstrumentor(), CeleryInstrumentor(), PsycopgInstrumentor()]


def exporters_from_environment() -> list["SpanExporter"]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names; an unknown name stops start-up saying which are known."""
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if name.strip()]
    known = {point.name: point for point in entry_points(group=EXPORTER_GROUP)}
    exporters = []
    for name in names:
        if name == "none":
            continue
        point = known.get(ALIASES.get(name, name))
        if point is None:
            raise ImproperlyConfigured(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides; "
                f"known: {', '.join(sorted({*known, *ALIASES, 'none'}))}."
            )
        exporters.append(point.load()())
    return exporters
