"""A trace collector for tests of processes started with ``OTEL_ENABLED``: OTLP over HTTP/protobuf, kept in memory.

The processes export to it as they would to Jaeger, Tempo or an
OpenTelemetry Collector (``OTEL_EXPORTER_OTLP_ENDPOINT=collector.url``); it
decodes each ``ExportTraceServiceRequest`` with the protocol's own classes
and keeps the spans, flattened with the service that sent them.
"""

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan


@dataclass(frozen=True)
class CollectedSpan:
    service: str
    name: str
    kind: str  # "server", "client", "producer", "consumer", "internal"
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_span_id: str  # "" for a root
    attributes: dict[str, object]
    links: tuple[tuple[str, str], ...]  # (trace id, span id)


class OtlpCollector:
    def __init__(self) -> None:
        self.spans: list[CollectedSpan] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "OtlpCollector":
        threading.Thread(target=self._server.serve_forever, name="otlp-collector", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def collected(self) -> list[CollectedSpan]:
        with self._lock:
            return list(self.spans)

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = [
            _flatten(span, _service(resource_spans.resource.attributes))
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.spans += spans


def _handler_for(collector: OtlpCollector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            collector.receive(body)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    return Handler


def _flatten(span: ProtoSpan, service: str) -> CollectedSpan:
    return CollectedSpan(
        service=service,
        name=span.name,
        kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower(),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes={a.key: _value(a.value) for a in span.attributes},
        links=tuple((link.trace_id.hex(), link.span_id.hex()) for link in span.links),
    )


def _service(attributes) -> str:
    return next((_value(a.value) for a in attributes if a.key == "service.name"), "")


def _value(value: AnyValue) -> object:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
