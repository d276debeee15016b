"""The Celery app: queues, routing and the one beat schedule.

Every setting lives in Django settings under the ``CELERY_`` namespace
(``config/settings/base.py``); this module only wires them up.
"""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("oms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect(weak=False)
def _trace_this_pool_process(**kwargs) -> None:
    """With ``OTEL_ENABLED``, each pool process traces itself: an export thread started before the fork is lost."""
    from config import telemetry

    telemetry.configure()
