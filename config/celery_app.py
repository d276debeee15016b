"""The Celery app: queues, routing and the one beat schedule.

Every setting lives in Django settings under the ``CELERY_`` namespace
(``config/settings/base.py``); this module only wires them up.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("oms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
