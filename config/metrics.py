"""Prometheus metrics beside the outbox's: requests, database queries, cache reads; and each host's own endpoint.

Recorded with prometheus_client in the process that does the work, so with ``PROMETHEUS_MULTIPROC_DIR`` (one folder
per host) a gunicorn worker's, a Celery pool child's and the relay's figures all land in that host's folder:

* requests: :class:`RequestMetricsMiddleware` (first in ``MIDDLEWARE``), labelled by the view's URL name (never the
  raw path: ``/orders/<uuid>/`` is one series), the method and the status;
* queries: an execute wrapper on every database connection (:func:`install`), which also sees the outbox's
  prepared statements (outbox/postgresql.py runs them through the connection's wrappers);
* cache reads: hits and misses of ``get`` and ``get_many`` on every cache :func:`install` measures.

A host's folder is read by the web's ``/metrics`` (config/views.py) where a web process runs; a worker or relay
host with no web process serves it itself on ``METRICS_PORT`` (:func:`serve_this_host`, started by the Celery
worker's main process and by ``manage.py outbox_relay``). See docs/operations.md, Metrics.
"""

import functools
import hmac
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from django.core.cache import caches
from django.db.backends.signals import connection_created
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, make_wsgi_app, multiprocess
from prometheus_client.exposition import ThreadingWSGIServer

logger = logging.getLogger(__name__)

REQUESTS = Counter(
    "django_http_requests_total",
    "Requests answered, by view (its URL name; <none> for a path no URL matches or a static file), method, status.",
    ["view", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "django_http_request_duration_seconds",
    "Time from the first middleware taking a request to it handing back the response, by view and method.",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUERY_SECONDS = Histogram(
    "django_db_query_duration_seconds",
    "Time a database statement took (its _count: statements run), by connection alias.",
    ["alias"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
QUERY_ERRORS = Counter(
    "django_db_query_errors_total", "Database statements that raised, by alias and error class.", ["alias", "error"]
)
CACHE_READS = Counter(
    "django_cache_reads_total",
    "Keys read from a cache (get, get_many, get_or_set), by cache alias and result: hit, miss or error.",
    ["cache", "result"],
)

NO_VIEW = "<none>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Count each request and time it, labelled by the view that answered: a fixed set of series, whatever the URL.

    First in ``MIDDLEWARE``, so the time includes the other middleware and a redirect or refusal by one of them is
    counted too. It costs 10-15 microseconds a request (docs/operations.md, Metrics and readiness).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        seconds = time.perf_counter() - started
        match = request.resolver_match
        view = match.view_name if match is not None else NO_VIEW
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(view, method).observe(seconds)
        REQUESTS.labels(view, method, str(response.status_code)).inc()
        return response


_query_seconds: dict[str, Any] = {}  # per alias, its histogram child: labels() would double the wrapper's cost


def measure_query(execute: Callable, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """A connection's execute wrapper: time every statement, count those that raise."""
    alias = context["connection"].alias
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    except Exception as error:
        QUERY_ERRORS.labels(alias, type(error).__name__).inc()
        raise
    finally:
        seconds = time.perf_counter() - started
        if (histogram := _query_seconds.get(alias)) is None:
            histogram = _query_seconds[alias] = QUERY_SECONDS.labels(alias)
        histogram.observe(seconds)


def _measure_queries(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On each new connection: its wrapper object keeps its wrappers across reconnections, so add ours once.

    First in the list (the outermost): ``connection.execute_wrapper()`` pops the last one when its block ends, so
    ours, added inside such a block, must not be the last.
    """
    if measure_query not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, measure_query)


_MISSING = object()


@functools.cache
def _measured_cache(backend: type) -> type:
    """``backend`` counting the keys its ``get`` and ``get_many`` find and miss (``get_or_set`` calls ``get``)."""

    class Measured(backend):
        def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
            try:
                value = super().get(key, _MISSING, version=version)
            except Exception:
                CACHE_READS.labels(self.metrics_alias, "error").inc()
                raise
            CACHE_READS.labels(self.metrics_alias, "miss" if value is _MISSING else "hit").inc()
            return default if value is _MISSING else value

        def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict:
            keys = list(keys)
            try:
                found = super().get_many(keys, version=version)
            except Exception:
                CACHE_READS.labels(self.metrics_alias, "error").inc(len(keys))
                raise
            if found:
                CACHE_READS.labels(self.metrics_alias, "hit").inc(len(found))
            if len(keys) > len(found):
                CACHE_READS.labels(self.metrics_alias, "miss").inc(len(keys) - len(found))
            return found

    Measured.__name__ = Measured.__qualname__ = backend.__name__
    Measured.__module__ = backend.__module__
    return Measured


def _measure_cache_reads() -> None:
    """Each cache Django creates (per thread and alias, from ``CACHES``) counts its reads.

    Django builds a cache from the ``BACKEND`` class named in ``CACHES``; the one it built becomes that class's
    measured subclass, so ``CACHES`` (and the checks that read it, config/checks.py) stay as written.
    """
    create = caches.create_connection
    if getattr(create, "measured", False):
        return

    def create_measured(alias: str) -> Any:
        backend: Any = create(alias)  # given an attribute of ours below
        backend.__class__ = _measured_cache(type(backend))  # type: ignore[arg-type]  # a class is hashable
        backend.metrics_alias = alias
        return backend

    create_measured.measured = True  # type: ignore[attr-defined]  # read back with getattr above
    caches.create_connection = create_measured  # type: ignore[method-assign]  # every cache Django builds


def install() -> None:
    """Measure every database connection's statements and every cache's reads in this process; a relay serves
    its host's metrics (``ProjectConfig.ready``; a worker's main process: config/celery_app.py)."""
    from outbox.management.commands.outbox_relay import relay_started

    connection_created.connect(_measure_queries, dispatch_uid="project.measure_queries")
    _measure_cache_reads()
    relay_started.connect(_serve_beside_the_relay, dispatch_uid="project.relay_metrics")


def _serve_beside_the_relay(sender: Any, **kwargs: Any) -> None:
    serve_this_host("relay")


# Each host's own endpoint


def this_host_registry() -> CollectorRegistry:
    """What a host serves: every process's figures in its ``PROMETHEUS_MULTIPROC_DIR``, else this process's own.

    Not the outbox's table figures (deliveries waiting, dead letters): they are the database's, the same from any
    host, and the web's ``/metrics`` shows them.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)
    return registry


def metrics_app(registry: CollectorRegistry, token: str) -> Callable:
    """prometheus_client's WSGI app, asking for ``Authorization: Bearer <token>`` when a token is set."""
    app = make_wsgi_app(registry)
    if not token:
        return app

    def app_with_token(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        scheme, _, sent = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode()):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", 'Bearer realm="metrics"')],
        )
        return [b"Send the scraper's token: Authorization: Bearer <METRICS_TOKEN>.\n"]

    return app_with_token


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Every scrape would be a line: log nothing."""


def serve_this_host(role: str) -> ThreadingWSGIServer | None:
    """Serve this host's metrics on ``METRICS_ADDRESS:METRICS_PORT`` from a thread of this process; None when off.

    Called by a worker's main process and the relay (``role`` says which, in the log). Every process of a host
    writes to one folder, so one endpoint shows them all: when the port is taken, another process of this host
    (or something else, which the log line names) serves it, and this one goes on without.
    """
    from django.conf import settings

    port = settings.METRICS_PORT
    if not port:
        return None
    address = settings.METRICS_ADDRESS.strip("[]")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        logger.warning(
            "metrics: %s serves its own figures only on port %s: without PROMETHEUS_MULTIPROC_DIR its pool "
            "children's (tasks, handlers) are not seen",
            role,
            port,
        )
    server_class = _server_class(address)
    try:
        server = make_server(
            address, port, metrics_app(this_host_registry(), settings.METRICS_TOKEN), server_class, _QuietHandler
        )
    except OSError as error:
        logger.warning("metrics: %s cannot serve on %s port %s (%s); going on without", role, address, port, error)
        return None
    threading.Thread(target=server.serve_forever, name="metrics-endpoint", daemon=True).start()
    logger.info("metrics: %s serves this host's metrics on http://%s:%s/metrics", role, address, port)
    return server


def _server_class(address: str) -> type[ThreadingWSGIServer]:
    try:
        is_v6 = ipaddress.ip_address(address).version == 6
    except ValueError:  # a name: as it resolves
        is_v6 = socket.getaddrinfo(address, None, type=socket.SOCK_STREAM)[0][0] == socket.AF_INET6
    if not is_v6:
        return ThreadingWSGIServer
    return type("ThreadingWSGIServerV6", (ThreadingWSGIServer,), {"address_family": socket.AF_INET6})
