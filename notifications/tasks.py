"""The notifications context's Celery task: the sweep that sends what the on-commit send missed."""

from collections.abc import Iterator
from contextlib import contextmanager

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection

from . import services


@contextmanager
def _dropping_a_broken_connection() -> Iterator[None]:
    """Workers keep their connection across tasks; one the database dropped is closed so the next task reconnects."""
    try:
        yield
    except DatabaseError:
        connection.close_if_unusable_or_obsolete()
        raise


@shared_task(name="notifications.send_due", queue="notifications", ignore_result=True)
def send_due() -> int:
    """Send the pending notifications whose next try has come (beat, every NOTIFICATIONS_SWEEP_SECONDS)."""
    with _dropping_a_broken_connection():
        return services.notifications_send_due(limit=settings.NOTIFICATIONS_SWEEP_BATCH)
