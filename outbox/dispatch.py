"""The outbox's transport: the Celery messages it sends, and the relay's kick.

* :func:`send`: one ``outbox.run_deliveries`` task per batch of one handler's
  deliveries, in one kombu producer batch (one broker round trip).
* :func:`kick_relay_on_commit` / :func:`kick_relay`: an ``outbox.relay`` run
  once a commit left work for the relay, coalesced across every process by the
  flag of :mod:`outbox.wakeup`; :func:`clear_kick` lets the next commit kick again.

Tasks are looked up by name on the current Celery app (the project's, whatever
it is called; ``outbox.apps`` imports :mod:`outbox.tasks` so that they are
registered), so the outbox imports no project module to send them.
"""

import logging
import secrets
from collections import defaultdict
from typing import Any

from celery import current_app
from django.db import connections, transaction

from . import wakeup
from .conf import outbox_setting
from .models import Delivery

logger = logging.getLogger(__name__)

RELAY_TASK = "outbox.relay"
RUN_DELIVERIES_TASK = "outbox.run_deliveries"
RELAY_QUEUE = "outbox"
# Celery's defaults for apply_async cost 0.78 ms a message here; without the
# argument reprs (for monitors, of delivery ids) and the publish retry loop
# (a send that fails is re-sent by the relay when its lease runs out) 0.35 ms.
CHEAP_SEND: dict[str, Any] = {"argsrepr": "", "kwargsrepr": "", "retry": False}


def new_dispatch_token() -> int:
    """A token naming one dispatch of a set of deliveries (a positive bigint)."""
    return secrets.randbits(62) + 1


def send(deliveries: list[Delivery], *, token: int) -> None:
    """Publish one Celery task per batch of one handler's deliveries (ids and the dispatch token).

    Runs after the claiming transaction committed. If the broker refuses, the
    deliveries stay dispatched and are sent again when their lease runs out.
    A delivery that has crashed a worker before travels alone, so that it can
    take no other delivery down with it.
    """
    if not deliveries:
        return
    run_deliveries = current_app.tasks[RUN_DELIVERIES_TASK]
    size = outbox_setting("TASK_BATCH_SIZE")
    by_handler: dict[tuple[str, str, bool], list[int]] = defaultdict(list)
    for delivery in deliveries:
        alone = bool(delivery.crashes)
        by_handler[(delivery.queue, delivery.handler, alone)].append(delivery.id)
    try:
        # One batch: the messages go to the broker together when it closes (one Redis round
        # trip, one client, where kombu builds a client per message otherwise).
        with run_deliveries.app.producer_or_acquire() as producer, producer.batch():
            for (queue, _handler, alone), ids in by_handler.items():
                step = 1 if alone else size
                for start in range(0, len(ids), step):
                    run_deliveries.apply_async(
                        (ids[start : start + step], token), queue=queue, producer=producer, **CHEAP_SEND
                    )
    except Exception:
        logger.exception("outbox: could not send %d deliveries; they are re-sent after their lease", len(deliveries))


def kick_relay_on_commit(using: str = "default") -> None:
    """Ask for a relay run once the current transaction commits (once per transaction).

    The kick is coalesced across every process by a flag in the database (outbox/wakeup.py).
    """
    if not outbox_setting("KICK_ON_COMMIT"):
        return
    if any(entry[1] is kick_relay for entry in connections[using].run_on_commit):  # (savepoints, func, robust)
        return
    transaction.on_commit(kick_relay, using=using)


def kick_relay() -> None:
    """Enqueue a relay run unless one is already queued and has not started.

    Never raises: the commit has happened, and the beat sweep relays its events anyway.
    """
    try:
        if not wakeup.set_flag():
            return
    except Exception:
        logger.warning("outbox: relay kick failed; the sweep will pick the event up", exc_info=True)
        return
    try:
        current_app.tasks[RELAY_TASK].apply_async(queue=RELAY_QUEUE, **CHEAP_SEND)
    except Exception:
        logger.warning("outbox: relay kick failed; the sweep will pick the event up", exc_info=True)
        clear_kick()


def clear_kick() -> None:
    """Let the next commit kick again. A database that does not answer costs coalescing, never a relay run."""
    try:
        wakeup.clear_flag()
    except Exception:
        logger.warning("outbox: could not clear the relay kick flag; kicks expire on their own", exc_info=True)
