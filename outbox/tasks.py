"""The outbox's Celery tasks: the relay, and the handler runner on each context queue."""

from celery import shared_task

from . import relay as relay_module
from . import runner


@shared_task(name="outbox.relay", ignore_result=True)
def relay() -> None:
    """One relay pass. Sent by beat every second and by on-commit kicks."""
    relay_module.clear_kick()
    relay_module.relay_pass()


@shared_task(name="outbox.run_deliveries", ignore_result=True)
def run_deliveries(delivery_ids: list[int]) -> None:
    """Run a batch of one handler's deliveries; sent to that handler's context queue."""
    runner.run_deliveries(delivery_ids)
