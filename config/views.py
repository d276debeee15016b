"""Project-level pages: the liveness and readiness checks, and the metrics."""

import hmac
import ipaddress
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from config.celery_app import app
from outbox import metrics

logger = logging.getLogger(__name__)

OK, FAIL = "ok", "fail"


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness with its dependencies: 200 when the database and broker answer, else 503 naming the failing part.

    Anyone may ask, so each part is only "ok" or "fail": why it fails (an error that names hosts, ports or
    users) goes to the log.
    """
    return _answer({"database": _check_database("healthz"), "broker": broker_probe()})


@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when this process may take traffic, else 503 naming what is missing.

    The database, the broker and the cache answer, and the database has every migration this code has (a
    release started before its ``migrate`` ran waits). Each part is only "ok" or "fail", as for /healthz;
    why goes to the log.
    """
    database = _check_database("readyz")
    return _answer(
        {
            "database": database,
            "broker": broker_probe(),
            "cache": _check_cache(),
            "migrations": migrations_probe() if database == OK else FAIL,
        }
    )


def _answer(checks: dict[str, str]) -> JsonResponse:
    failing = [name for name, result in checks.items() if result != OK]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)


def _check_database(check: str) -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return OK
    except Exception:  # any failure is the answer, not an error of the check
        logger.warning("%s: the database does not answer", check, exc_info=True)
        return FAIL


def _check_cache() -> str:
    try:
        cache.has_key("project:readyz")  # one round trip; not a read, so no miss in the cache's metrics
        return OK
    except Exception:
        logger.warning("readyz: the cache does not answer", exc_info=True)
        return FAIL


def _check_migrations() -> str:
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        logger.warning("readyz: cannot read the applied migrations", exc_info=True)
        return FAIL
    if pending:
        names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in pending)
        logger.warning("readyz: %d migrations not applied: %s", len(pending), names)
        return FAIL
    return OK


def _check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)  # one attempt: a probe must answer fast
        return OK
    except Exception:
        logger.warning("healthz: the broker does not answer", exc_info=True)
        return FAIL


class CachedProbe:
    """A probe's answer, reused for ``HEALTHZ_BROKER_CACHE_SECONDS`` by every thread of this process.

    Each probe opens a connection: a load balancer (or anyone) asking often must not open one per request.
    One thread probes while the others wait for its answer.
    """

    def __init__(self, probe: Callable[[], str]) -> None:
        self._probe = probe
        self._lock = threading.Lock()
        self._answer = ""
        self._until = 0.0

    def __call__(self) -> str:
        with self._lock:
            if not self._answer or time.monotonic() >= self._until:
                self._answer = self._probe()
                self._until = time.monotonic() + settings.HEALTHZ_BROKER_CACHE_SECONDS
            return self._answer

    def forget(self) -> None:
        """Probe again on the next call."""
        with self._lock:
            self._answer = ""


class MigrationsProbe(CachedProbe):
    """Pending migrations, probed at most every ``HEALTHZ_BROKER_CACHE_SECONDS``: reading them loads every
    migration file (10-80 ms). Once none is pending the answer stays: this process's code gains none."""

    def __call__(self) -> str:
        answer = super().__call__()
        if answer == OK:
            with self._lock:
                self._until = float("inf")
        return answer


broker_probe = CachedProbe(_check_broker)
migrations_probe = MigrationsProbe(_check_migrations)


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for the scraper only (see ``METRICS_TOKEN`` in settings)."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scraper may read: by bearer token if one is set, else from loopback only where allowed.

    Production requires the token (``METRICS_TOKEN_REQUIRED``; it refuses to start without one, project.E004):
    a proxy that adds no header makes every request look like one from loopback.
    """
    if settings.METRICS_TOKEN:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), settings.METRICS_TOKEN.encode()):
            return None
        response = HttpResponse("Send the scraper's token: Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if getattr(settings, "METRICS_TOKEN_REQUIRED", False):
        return HttpResponse("Metrics need METRICS_TOKEN to be set on the server.\n", status=403)
    if _is_loopback(request.META.get("REMOTE_ADDR", "")) and not _forwarded(request):
        return None
    return HttpResponse(
        "Metrics are served to this host only; set METRICS_TOKEN to scrape from elsewhere.\n", status=403
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _forwarded(request: HttpRequest) -> bool:
    """A request relayed by a proxy on this host comes from loopback but not from this host."""
    return any(header in request.headers for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))
