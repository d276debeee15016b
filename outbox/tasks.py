"""The outbox's Celery tasks: the relay, and the handler runner on each context queue."""

from collections.abc import Iterator
from contextlib import contextmanager

from celery import shared_task
from django.db import InterfaceError, OperationalError, connection

from . import relay as relay_module
from . import runner


@contextmanager
def _dropping_a_broken_connection() -> Iterator[None]:
    """Workers keep their connection across tasks (CELERY_DB_REUSE_MAX); one the
    database dropped is closed here so the next task connects afresh. The
    delivery is not lost: its lease runs out and the relay dispatches it again."""
    try:
        yield
    except (InterfaceError, OperationalError):
        connection.close()
        raise


@shared_task(name="outbox.relay", ignore_result=True)
def relay() -> None:
    """One relay pass. Sent by beat every second and by on-commit kicks."""
    relay_module.clear_kick()
    with _dropping_a_broken_connection():
        relay_module.relay_pass()


@shared_task(name="outbox.run_deliveries", ignore_result=True)
def run_deliveries(delivery_ids: list[int]) -> None:
    """Run a batch of one handler's deliveries; sent to that handler's context queue."""
    with _dropping_a_broken_connection():
        runner.run_deliveries(delivery_ids)
