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
"""

from typing import Any

from django.conf import settings
from django.core import checks

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
