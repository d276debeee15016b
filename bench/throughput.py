"""throughput: producers as fast as they can go while the consumers run, three subscribers an event.

Two producer threads commit ``Pinged`` events (three subscribers each, as
``OrderConfirmed`` has), ten to a transaction, without pacing, while a worker
(two pool processes) and the relay process consume. After a warm-up, a window
counts the deliveries done (committed probe effects) and the events committed.
Baseline: the same producers send three ``probe.record_effect`` tasks per
event with ``delay_on_commit`` to the same worker. The sides take turns, the
first alternating run by run; between them the consumers stop consuming and
the backlog is dropped.
"""

import threading
import time
from typing import Any

from bench import harness, work

WARMUP_S, WINDOW_S = 1.5, 4.0
SMOKE_WARMUP_S, SMOKE_WINDOW_S = 0.5, 1.5
PER_TRANSACTION = 10
PRODUCERS = 2
TARGETS = {"deliveries_per_s": ">= 2x baseline"}

_runs = 0


def run(*, smoke: bool) -> dict:
    global _runs
    warmup, window = (SMOKE_WARMUP_S, SMOKE_WINDOW_S) if smoke else (WARMUP_S, WINDOW_S)
    harness.reset()
    with harness.Consumers(parked=True) as consumers:
        sides = [("figures", work.publish_pinged, True), ("baseline", work.send_pinged, False)]
        if _runs % 2:
            sides.reverse()
        _runs += 1
        result: dict[str, Any] = {key: measure(consumers, side, relay, warmup, window) for key, side, relay in sides}
    result["ratio"] = harness.ratios(result["figures"], result["baseline"])
    result["targets"] = TARGETS
    return result


def measure(consumers: harness.Consumers, side, relay: bool, warmup: float, window: float) -> dict[str, float]:
    harness.reset()
    consumers.consume()
    if relay:
        consumers.start_relay()
    try:
        return load(side, warmup, window)
    finally:
        consumers.stop_relay()
        consumers.park()


def load(side, warmup: float, window: float) -> dict[str, float]:
    """Producers commit ``side``'s events as fast as they can; what is done and committed in the window."""
    stop = threading.Event()
    committed = [0] * PRODUCERS
    failed: list[BaseException] = []

    def produce(index: int) -> None:
        while not stop.is_set():
            work.in_transactions(side, PER_TRANSACTION, PER_TRANSACTION)
            committed[index] += PER_TRANSACTION

    def producing() -> None:
        try:
            harness.in_threads(produce, PRODUCERS)
        except BaseException as exc:
            failed.append(exc)
            stop.set()

    producers = threading.Thread(target=producing)
    producers.start()
    try:
        time.sleep(warmup)
        done_before, events_before, began = harness.effects(), sum(committed), time.monotonic()
        time.sleep(window)
        done, events, elapsed = (
            harness.effects() - done_before,
            sum(committed) - events_before,
            time.monotonic() - began,
        )
    finally:
        stop.set()
        producers.join()
    if failed:
        raise failed[0]
    return {"deliveries_per_s": done / elapsed, "events_committed_per_s": events / elapsed}
