"""A workflow run to its end in the test's own process, through the outbox's own runner.

For tests that read what a flow leaves in the database (a trace, a timeline):
the handlers' logic and their bookkeeping are the real ones, run round after
round as workers would. That delivery itself works, through a broker and real
workers, is proved in tests/flows/.
"""

from uuid import UUID

from outbox.models import Delivery
from outbox.relay import dispatch_due, fan_out
from outbox.runner import run_deliveries


def run_until_settled(correlation_id: UUID, *, rounds: int = 20) -> None:
    """Run the workflow's dispatched deliveries, and those they lead to, until none is left to run now."""
    for _ in range(rounds):
        fan_out(batch_size=100)
        dispatch_due(batch_size=100)
        waiting = Delivery.objects.filter(event__correlation_id=correlation_id, status=Delivery.Status.DISPATCHED)
        ids = list(waiting.order_by("id").values_list("id", flat=True))
        if not ids:
            return
        run_deliveries(ids)
    raise AssertionError(f"workflow {correlation_id} still had deliveries to run after {rounds} rounds")
