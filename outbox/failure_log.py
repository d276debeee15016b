"""The record of each failed attempt of a delivery (``outbox.DeliveryFailure``), for the causal trace.

Written by whichever process records the failure, in the transaction that records it on the delivery: the
runner (a handler raised, the time limit, a worker lost found by the next runner, ...) and the relay (a
worker lost found when its lease ran out). Nothing is written for a success.
"""

from django.db.models.functions import Now

from . import failures
from .models import DeliveryFailure

Cause = DeliveryFailure.Cause


def failed_attempt_record(
    *, delivery_id: int, attempt: int, cause: Cause, error_type: str, error: str, counted: bool = True
) -> None:
    """Keep one failed attempt: its number, cause, error type, the error's first lines, and when (database clock).

    ``counted``: False for an attempt not charged to the delivery (its circuit was open, or a shared batch's
    worker was lost on its last attempt).
    """
    DeliveryFailure.objects.create(
        delivery_id=delivery_id,
        attempt=attempt,
        cause=cause,
        error_type=error_type,
        error=failures.first_lines(error),
        counted=counted,
        failed_at=Now(),
    )
