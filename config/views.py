"""Project-level pages: the shop's front page, the liveness check and the metrics."""

import hmac
import ipaddress

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

from config.celery_app import app
from outbox import metrics


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness with its dependencies: 200 when the database and broker answer, else 503 naming the failure."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    failing = [name for name, result in checks.items() if result != "ok"]
    body = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is the answer, not an error of the check
        return f"error: {exc}"


def _check_broker() -> str:
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)  # one attempt: a probe must answer fast
        return "ok"
    except Exception as exc:
        return f"error: {exc}"


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for the scraper only (see ``METRICS_TOKEN`` in settings)."""
    refusal = _metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)


def _metrics_refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the scraper may read: by bearer token if one is set, else from loopback only."""
    if settings.METRICS_TOKEN:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), settings.METRICS_TOKEN.encode()):
            return None
        response = HttpResponse("Send the scraper's token: Authorization: Bearer <METRICS_TOKEN>.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
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
