"""The outbox's Celery tasks: the relay, and the handler runner on each context queue."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_init
from celery.utils.log import get_task_logger
from django.db import InterfaceError, OperationalError, connection

from . import checks, dispatch, runner
from . import relay as relay_module

logger = get_task_logger(__name__)


@contextmanager
def dropping_a_broken_connection() -> Iterator[None]:
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
    """One relay pass. Sent by beat every second and by on-commit kicks.

    It clears the kick flag before it claims anything: a commit after this point
    kicks again, one before it is seen by this pass (outbox/dispatch.py, outbox/wakeup.py).
    """
    dispatch.clear_kick()
    soft = checks.soft_time_limit(relay, request=relay.request)
    with dropping_a_broken_connection():
        relay_module.relay_pass(max_seconds=min(5.0, 0.5 * soft) if soft else 5.0)


@shared_task(name="outbox.run_deliveries", bind=True, ignore_result=True)
def run_deliveries(self: Task, delivery_ids: list[int], token: int | None = None) -> None:
    """Run a batch of one handler's deliveries; sent to that handler's context queue.

    Deliveries another runner started a moment ago are looked at again after
    the grace the runner gives such starts: if no runner holds them by then,
    their worker was lost, and the runner records it.
    """
    with dropping_a_broken_connection():
        report = runner.run_deliveries(delivery_ids, token=token, deadline=_deadline(self))
    if report.handed_back:
        logger.info("outbox: %d deliveries handed back unstarted at the soft time limit", len(report.handed_back))
    if report.busy:
        options: dict[str, Any] = {**dispatch.CHEAP_SEND, "countdown": runner.START_GRACE_SECONDS}
        if queue := (self.request.delivery_info or {}).get("routing_key"):
            options["queue"] = queue
        self.apply_async((report.busy, token), **options)


def _deadline(task: Task) -> float | None:
    """When the batch must stop starting deliveries: nine tenths into the soft time limit."""
    soft = checks.soft_time_limit(task, request=task.request)
    return time.monotonic() + 0.9 * soft if soft else None


@worker_init.connect
def _refuse_an_unsafe_configuration(**kwargs) -> None:
    """A worker whose batches could outlive their lease does not start (see outbox.checks)."""
    checks.refuse_to_start_if_unsafe()
