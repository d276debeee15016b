"""The plain-Celery baseline of the benchmarks: the probe handler's work as a bare Celery task.

Sent with ``delay_on_commit`` (``bench/``), run by the same worker processes as
the outbox's deliveries, on the probe's queue; it does what ``record_price`` /
``record_a`` do (one ``Effect`` insert), through the same function.
"""

from celery import shared_task

from .effects import record_effect


@shared_task(name="probe.record_effect", ignore_result=True, queue="probe")
def record_effect_task(handler: str, event_id: str, aggregate_id: str, seq: int = 0, note: str = "") -> None:
    record_effect(handler, event_id, aggregate_id, seq=seq, note=note)
