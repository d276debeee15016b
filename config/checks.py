"""The project's system checks (``manage.py check``, and every management command).

**A cache every process shares.** The sign-in throttle (``API_TOKEN_RATE``,
DRF's throttling) counts attempts in the default cache. This project always
runs as several processes (web, worker and beat, ``make run`` included), and
nothing in the settings says how many of them serve requests (gunicorn's
``--workers``, several hosts): so a cache each process keeps to itself
(``LocMemCache``) lets every web process allow the whole rate, and one that
keeps nothing (``DummyCache``) throttles nobody. Either is reported, with
its id, wherever it is configured; a deployment that really serves every
request from one process may silence it (``SILENCED_SYSTEM_CHECKS``).
The outbox needs no cache (its relay kicks coalesce in the database).

**Nothing unsafe in production** (errors, so every management command stops;
the WSGI/ASGI applications and Celery's worker and beat refuse to start on
them too, see :func:`startup_refusal`, as Django runs no checks there).
``config.settings.production`` turns them on; development settings (local,
test) run the sandbox and serve metrics to loopback by design.

- ``project.E001``/``E002``: the payment gateway (``PAYMENTS_GATEWAY``) or
  the carrier (``SHIPPING_CARRIER``) is a sandbox adapter (its class says
  ``sandbox = True``), which approves free test tokens and ships nothing,
  while ``ALLOW_SANDBOX_PROVIDERS`` does not declare a demo.
- ``project.E003``: either setting names no class.
- ``project.E004``: ``METRICS_TOKEN`` is empty where the settings require it:
  without it ``/metrics`` would trust "came from loopback through no proxy",
  which a proxy that adds no header turns into "anyone".
- ``project.E005``: ``SECURE_PROXY_SSL_HEADER`` is set with ``NUM_PROXIES``
  at 0: any client could then say its plain HTTP request came over HTTPS.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks

from payments.gateway import gateway_class
from shipping.carrier import carrier_class

PER_PROCESS_CACHES = {
    "django.core.cache.backends.locmem.LocMemCache": "keeps its entries in each process",
    "django.core.cache.backends.dummy.DummyCache": "keeps nothing",
}


@checks.register(checks.Tags.caches)
def check_cache_is_shared(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"The default cache ({backend.rsplit('.', 1)[-1]}) {PER_PROCESS_CACHES[backend]}, so the sign-in "
            f"throttle (API_TOKEN_RATE = {settings.API_TOKEN_RATE}) is not shared by the processes that serve "
            "requests: each allows the whole rate"
            + (", and none throttles at all." if "Dummy" in backend else ", multiplying it by their number."),
            hint=(
                "Set CACHE_URL to a cache every process reaches: redis://host:6379/1 across hosts, or "
                "filecache:///absolute/folder for processes of one host (the embedded default). If a single "
                "process serves every request, add 'project.W001' to SILENCED_SYSTEM_CHECKS."
            ),
            id="project.W001",
        )
    ]


# Each provider setting: the adapter class it names, what its sandbox does to real orders, and the check id.
PROVIDERS: dict[str, tuple[Callable[[], type], str, str]] = {
    "PAYMENTS_GATEWAY": (
        gateway_class,
        "the sandbox payment gateway: it approves free test tokens such as tok_visa and takes no money",
        "project.E001",
    ),
    "SHIPPING_CARRIER": (
        carrier_class,
        "the sandbox carrier: it books no parcel, so paid orders are marked shipped and never leave",
        "project.E002",
    ),
}


@checks.register(checks.Tags.security)
def check_no_sandbox_providers(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    for setting, (adapter, sandbox, error_id) in PROVIDERS.items():
        try:
            named = adapter()
        except ImportError as exc:
            found.append(
                checks.Error(
                    f"{setting} names no class ({exc}).",
                    hint=f"Set {setting} to the dotted path of your provider's adapter class.",
                    id="project.E003",
                )
            )
            continue
        if getattr(named, "sandbox", False) is True and not getattr(settings, "ALLOW_SANDBOX_PROVIDERS", True):
            found.append(
                checks.Error(
                    f"{setting} names {named.__module__}.{named.__qualname__}, {sandbox}.",
                    hint=f"Set {setting} to your provider's adapter class; only a demo that takes no real orders "
                    "may run the sandbox, by setting ALLOW_SANDBOX_PROVIDERS=true.",
                    id=error_id,
                )
            )
    return found


@checks.register(checks.Tags.security)
def check_metrics_token(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.METRICS_TOKEN or not getattr(settings, "METRICS_TOKEN_REQUIRED", False):
        return []
    return [
        checks.Error(
            "METRICS_TOKEN is not set: /metrics must not trust an address or a missing proxy header here.",
            hint="Set METRICS_TOKEN to a long random string and give it to the scraper "
            "(Authorization: Bearer <token>).",
            id="project.E004",
        )
    ]


@checks.register(checks.Tags.security)
def check_proxy_header_has_a_proxy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not getattr(settings, "SECURE_PROXY_SSL_HEADER", None) or settings.NUM_PROXIES > 0:
        return []
    return [
        checks.Error(
            "SECURE_PROXY_SSL_HEADER is set while NUM_PROXIES is 0: with no proxy to set that header, any client "
            "can send it and pass a plain HTTP request for HTTPS.",
            hint="Set NUM_PROXIES to the number of proxies in front of the web processes, or unset "
            "SECURE_PROXY_SSL_HEADER.",
            id="project.E005",
        )
    ]


STARTUP_CHECKS = (check_no_sandbox_providers, check_metrics_token, check_proxy_header_has_a_proxy)


def startup_refusal() -> str:
    """Why this process must not start (one line per error of :data:`STARTUP_CHECKS`); empty when it may.

    For the processes that run no system checks: gunicorn and uvicorn (config/wsgi.py, asgi.py),
    Celery's worker and beat (config/celery_app.py). They need the apps loaded.
    """
    errors = [message for check in STARTUP_CHECKS for message in check() if message.is_serious()]
    return "\n".join(f"{m.id}: {m.msg} HINT: {m.hint}" for m in errors)
