"""The minimal project's Celery app (``celery -A tests.outbox.project``): its settings are Django's ``CELERY_*``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.outbox.project.settings")

app = Celery("outbox-tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
