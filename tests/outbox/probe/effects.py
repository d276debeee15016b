"""The probe's one unit of work, shared by its outbox handlers and the plain-Celery baseline task.

Both insert one ``Effect`` row in the caller's transaction. When the process
runs with ``PROBE_DONE_LIST`` set (the benchmarks set it on the workers they
start), the row's event id and the wall-clock time are also pushed to that
Redis list once the transaction has committed: "handler done", measured the
same way on both sides (``bench/latency.py``).
"""

import functools
import os
import time

import redis
from django.conf import settings
from django.db import transaction

from .models import Effect

DONE_LIST_ENV = "PROBE_DONE_LIST"


def record_effect(handler: str, event_id, aggregate_id: str, **fields) -> None:
    Effect.objects.create(handler=handler, event_id=event_id, aggregate_id=aggregate_id, **fields)
    done_list = os.environ.get(DONE_LIST_ENV)
    if done_list:
        transaction.on_commit(functools.partial(_note_done, done_list, str(event_id)))


def _note_done(done_list: str, event_id: str) -> None:
    _done_channel().rpush(done_list, f"{event_id} {time.time()}")


@functools.cache
def _done_channel() -> redis.Redis:
    """One client per process (redis-py reconnects in a forked child), not a connection per push."""
    return redis.Redis.from_url(settings.PROBE_SIDE_CHANNEL_URL)
