"""The Celery app: queues, routing and the one beat schedule.

Every setting lives in Django settings under the ``CELERY_`` namespace
(``config/settings/base.py``); this module only wires them up. Without
``DJANGO_SETTINGS_MODULE`` a worker or beat runs the production settings,
never the development ones (``make run`` names ``local``).
"""

import os
import sys

from celery import Celery
from celery.signals import beat_init, worker_init, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("oms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect(weak=False)
def _trace_this_pool_process(**kwargs) -> None:
    """With ``OTEL_ENABLED``, each pool process traces itself: an export thread started before the fork is lost."""
    from config import telemetry

    telemetry.configure()


@worker_init.connect(weak=False)
@beat_init.connect(weak=False)
def _refuse_an_unsafe_deployment(**kwargs) -> None:
    """A worker or beat does not start on settings ``manage.py check`` refuses (config/checks.py), and says why.

    SystemExit, as Celery logs and ignores an exception a signal handler raises.
    """
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from config.checks import startup_refusal

    if refusal := startup_refusal():
        print(f"refusing to start:\n{refusal}", file=sys.stderr)
        raise SystemExit(2)


@worker_ready.connect(weak=False)
def _serve_this_hosts_metrics(**kwargs) -> None:
    """With ``METRICS_PORT``, the worker's main process serves its host's metrics folder, its pool children's figures
    included (config/metrics.py); started once the pool is up."""
    from config import metrics

    metrics.serve_this_host("worker")
