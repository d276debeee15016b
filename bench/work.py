"""The unit of work both sides do, and how each side starts it: an outbox event, or a plain Celery task.

The outbox side publishes probe events through ``outbox.publishing.publish``:
``Priced`` has one subscriber (``record_price``), ``Pinged`` three
(``record_a``/``b``/``c``, as ``OrderConfirmed`` has three). The baseline sends
``probe.record_effect`` with ``delay_on_commit``, once per subscriber the event
would have had. Both end in ``tests.outbox.probe.effects.record_effect``: one
``Effect`` insert, and the commit time noted for ``latency``.
"""

import time
import uuid

from django.db import transaction

from outbox.publishing import publish
from tests.outbox.probe.events import Pinged, Priced
from tests.outbox.probe.tasks import record_effect_task

PRICE = {"amount": "9.99", "currency": "EUR"}
PRICE_NOTE = "Decimal:9.99:EUR"  # what record_price writes for PRICE
PINGED_HANDLERS = ("a", "b", "c")


# Each of these runs in the caller's transaction (see ``in_transactions``).


def publish_priced(count: int) -> list[str]:
    """``count`` Priced events."""
    return [str(publish(Priced(thing_id=uuid.uuid4(), price=PRICE)).event_id) for _ in range(count)]


def send_priced(count: int) -> list[str]:
    """The baseline of :func:`publish_priced`: one task per event, sent when the transaction commits."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for event_id in ids:
        record_effect_task.delay_on_commit("price", event_id, str(uuid.uuid4()), note=PRICE_NOTE)
    return ids


def queue_priced(count: int) -> list[str]:
    """:func:`send_priced`'s tasks, queued at once in one kombu publish batch: a backlog, sooner built.

    For ``drain``'s baseline, whose figure is how fast the queued tasks are
    consumed, not how they were queued (no transaction: nothing consumes yet).
    """
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with record_effect_task.app.producer_or_acquire() as producer, producer.batch():
        for event_id in ids:
            record_effect_task.apply_async(
                ("price", event_id, str(uuid.uuid4())), {"note": PRICE_NOTE}, producer=producer
            )
    return ids


def publish_pinged(count: int) -> None:
    for seq in range(count):
        publish(Pinged(thing_id=uuid.uuid4(), seq=seq))


def send_pinged(count: int) -> None:
    """The baseline of :func:`publish_pinged`: three tasks per event, sent on commit."""
    for seq in range(count):
        event_id, thing_id = str(uuid.uuid4()), str(uuid.uuid4())
        for handler in PINGED_HANDLERS:
            record_effect_task.delay_on_commit(handler, event_id, thing_id, seq=seq)


def in_transactions(side, total: int, per_transaction: int) -> None:
    """``total`` events of ``side``, ``per_transaction`` to a transaction."""
    for start in range(0, total, per_transaction):
        with transaction.atomic():
            side(min(per_transaction, total - start))


def committed(side) -> tuple[str, float]:
    """Run one one-event transaction of ``side`` (:func:`publish_priced` or :func:`send_priced`).

    Returns the event id and the moment the transaction committed: the first
    on-commit callback, registered before the side's own (the outbox's kick,
    Celery's send), so both sides are timed from the same point.
    """
    stamp: list[float] = []
    with transaction.atomic():
        transaction.on_commit(lambda: stamp.append(time.time()))
        (event_id,) = side(1)
    return event_id, stamp[0]
