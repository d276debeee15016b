"""Anatomy: where the time of one delivery's run and of one publish goes, step by step, beside a plain task's.

The profile behind ``latency`` and ``publish``, in this process against the
runner's database and broker (no worker: the steps are timed where they run):

- ``run_us``: ``outbox.runner.run_deliveries`` of one fresh delivery (a
  ``Priced`` event, one subscriber), split into ``start_us`` (the committed
  start: the attempt is durable before the handler runs), ``claim_us`` (BEGIN
  and the claim that locks the delivery and marks it done), ``handler_us``
  (the handler's one insert), ``commit_us``, and ``rest_us`` (the runner's
  own Python). Baseline ``run_us``: what the plain-Celery task does, the same
  insert in autocommit (its commit included).
- ``publish_us``: ``outbox.publishing.publish`` of a ``Pinged`` event (three
  subscribers, as ``OrderConfirmed``), of which ``publish_statement_us`` waits
  on its one statement (event and deliveries).
- ``send_us``: sending those three deliveries' tasks after the commit
  (``outbox.dispatch.send``, one kombu publish batch). Baseline ``send_us``: the
  same three tasks sent one by one, as ``delay_on_commit`` sends them.

Medians over ``ROUNDS`` rounds (alternating sides). Nothing is judged: this
bench explains the others' figures, it sets no target.
Run alone (for development): ``python -m bench.anatomy [--smoke]``.
"""

import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

ROUNDS = 300
WARM_UP = 50


def run(*, smoke: bool) -> dict:
    from bench import harness

    harness.setup_once()
    harness.reset()
    rounds = 20 if smoke else ROUNDS
    try:
        figures, baseline = _delivery_run(rounds)
        publish_figures, publish_baseline = _publish_and_send(rounds)
    finally:
        harness.reset()  # the sends' messages too: no later bench's worker must find them
    figures.update(publish_figures)
    baseline.update(publish_baseline)
    ratio = {key: figures[key] / value for key, value in baseline.items() if value}
    return {"figures": figures, "baseline": baseline, "ratio": ratio, "targets": {}}


def _delivery_run(rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    from django.db.backends.base.base import BaseDatabaseWrapper

    import tests.outbox.probe.handlers as probe_handlers
    from bench import work
    from outbox import postgresql, runner
    from tests.outbox.probe.effects import record_effect

    steps: dict[str, list[float]] = defaultdict(list)
    runs, plain = [], []
    for number in range(WARM_UP + rounds):
        delivery_id, token = _one_delivery(work.publish_priced)
        with ExitStack() as timed:
            for target, name, step in (
                (postgresql, "start", "start_us"),
                (postgresql, "claim", "claim_us"),
                (probe_handlers, "record_effect", "handler_us"),
                (BaseDatabaseWrapper, "commit", "commit_us"),
            ):
                timed.enter_context(_timing(target, name, steps[step]))
            began = time.perf_counter()
            runner.run_deliveries([delivery_id], token=token)
            runs.append(time.perf_counter() - began)
        began = time.perf_counter()
        record_effect("price", uuid.uuid4(), str(uuid.uuid4()), note=work.PRICE_NOTE)
        plain.append(time.perf_counter() - began)
        if number < WARM_UP:
            for values in (runs, plain, *steps.values()):
                values.clear()
    figures = {"run_us": _median_us(runs), **{step: _median_us(values) for step, values in steps.items()}}
    figures["rest_us"] = round(figures["run_us"] - sum(figures[step] for step in steps), 1)
    return figures, {"run_us": _median_us(plain)}


def _publish_and_send(rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    from bench import work
    from outbox import dispatch, postgresql
    from outbox.publishing import publish
    from tests.outbox.probe.events import Pinged
    from tests.outbox.probe.tasks import record_effect_task

    publishes: list[float] = []
    statements: list[float] = []
    sends: list[float] = []
    plain_sends: list[float] = []

    def publish_one(number: int) -> None:
        with _timing(postgresql, "prepared", statements):
            began = time.perf_counter()
            publish(Pinged(thing_id=uuid.uuid4(), seq=number))
            publishes.append(time.perf_counter() - began)

    for number in range(WARM_UP + rounds):
        [(deliveries, _token)] = _committed_unsent(lambda: publish_one(number))  # noqa: B023 (called at once)
        began = time.perf_counter()
        dispatch.send(deliveries, token=0)
        sends.append(time.perf_counter() - began)
        began = time.perf_counter()
        event_id, thing_id = str(uuid.uuid4()), str(uuid.uuid4())
        for handler in work.PINGED_HANDLERS:
            record_effect_task.apply_async((handler, event_id, thing_id), {"seq": number})
        plain_sends.append(time.perf_counter() - began)
        if number < WARM_UP:
            for values in (publishes, statements, sends, plain_sends):
                values.clear()
    figures = {
        "publish_us": _median_us(publishes),
        "publish_statement_us": _median_us(statements),
        "send_us": _median_us(sends),
    }
    return figures, {"send_us": _median_us(plain_sends)}


def _one_delivery(side: Callable[[int], list[str]]) -> tuple[int, int]:
    """Publish one event in a transaction of its own; its one delivery (id, token), its task not sent."""
    [([delivery], token)] = _committed_unsent(lambda: side(1))
    return delivery.id, token


def _committed_unsent(body: Callable[[], object]) -> list[tuple[list, int]]:
    """Run ``body`` in a transaction; what the outbox would have sent at its commit, kept here unsent."""
    from django.db import transaction

    from outbox import dispatch

    unsent: list[tuple[list, int]] = []
    keep = mock.patch.object(dispatch, "send", lambda deliveries, token: unsent.append((deliveries, token)))
    with keep, transaction.atomic():
        body()
    return unsent


@contextmanager
def _timing(target: object, name: str, into: list[float]) -> Iterator[None]:
    """Time every call of ``target.name`` while the block runs, into ``into`` (seconds)."""
    original = getattr(target, name)

    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - began)

    with mock.patch.object(target, name, timed):
        yield


def _median_us(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1e6, 1)


if __name__ == "__main__":
    import json

    print(json.dumps(run(smoke="--smoke" in sys.argv)))
