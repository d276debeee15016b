"""drain: 20,000 pending events (one subscriber each) done by consumers that start after them.

Outbox: 20,000 ``Priced`` events published through ``outbox.publishing.publish``
(100 to a transaction, two producer threads) while no consumer runs; then the
worker starts consuming and the relay process starts. Baseline: 20,000
``probe.record_effect`` tasks sent with ``delay_on_commit`` (same
transactions) while no worker consumes; then the same worker consumes them.

One worker (two pool processes) serves both sides: it boots once, parked on a
queue nobody sends to, and consumes the real queues only when its side's
backlog is complete, so boot time is not measured. The time measured is from
the first effect's insert to the last's (the effects' own timestamps);
``startup_s`` is from the start of consuming to the first effect (the outbox's
includes starting the relay process). Which side goes first alternates run by run.
"""

import time
from typing import Any

from bench import harness, work

EVENTS, SMOKE_EVENTS = 20_000, 1_000
PER_TRANSACTION = 100
TARGETS = {"deliveries_per_s": ">= 3x baseline"}

_runs = 0


def run(*, smoke: bool) -> dict:
    global _runs
    events = SMOKE_EVENTS if smoke else EVENTS
    harness.reset()
    with harness.Consumers(parked=True) as consumers:
        sides = [("figures", drain_outbox), ("baseline", drain_baseline)]
        if _runs % 2:
            sides.reverse()
        _runs += 1
        result: dict[str, Any] = {key: measure(consumers, events) for key, measure in sides}
    result["ratio"] = harness.ratios(
        {"deliveries_per_s": result["figures"]["deliveries_per_s"]},
        {"deliveries_per_s": result["baseline"]["deliveries_per_s"]},
    )
    result["targets"] = TARGETS
    return result


def drain_outbox(consumers: harness.Consumers, events: int) -> dict[str, float]:
    """Publish ``events`` with nothing consuming, then start the consumers; figures of the drain."""
    harness.reset()
    backlog(work.publish_priced, events)
    began = time.monotonic()
    consumers.consume()
    consumers.start_relay()
    try:
        return finish(events, began)
    finally:
        consumers.stop_relay()
        consumers.park()


def drain_baseline(consumers: harness.Consumers, events: int) -> dict[str, float]:
    harness.reset()
    shares = harness.split(events, 2)
    harness.in_threads(lambda i: work.queue_priced(shares[i]), threads=2)
    began = time.monotonic()
    consumers.consume()
    try:
        return finish(events, began)
    finally:
        consumers.park()


def backlog(side, events: int) -> None:
    shares = harness.split(events, 2)
    harness.in_threads(lambda i: work.in_transactions(side, shares[i], PER_TRANSACTION), threads=2)


def finish(events: int, began: float) -> dict[str, float]:
    harness.wait_until(lambda: harness.effects() > 0, timeout=60, what="the first effect", interval=0.01)
    first = time.monotonic()
    harness.wait_until(lambda: harness.effects() >= events, timeout=600, what=f"{events} effects", interval=0.1)
    count, span = harness.effect_span()
    return {"deliveries_per_s": count / span, "drain_s": span, "startup_s": first - began}
