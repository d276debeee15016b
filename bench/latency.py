"""latency: commit -> handler done at light load, the outbox against a plain Celery task.

One event every 20 ms (1,000 measured, after 20 of warm-up each side). The
outbox runs as shipped: a worker (two pool processes) and ``manage.py
outbox_relay`` with no options; whatever path the code takes from commit to
handler is what is measured. The baseline is ``probe.record_effect`` sent with
``delay_on_commit`` to the same worker. The two interleave, 10 ms apart, the
order flipping every tick, so the machine's noise hits both. Both time from the
commit (the first on-commit callback) to the commit of the handler's insert
(``tests/outbox/probe/effects.py`` notes it in Redis).
"""

import time

from bench import harness, work

EVENTS, SMOKE_EVENTS = 1000, 40
WARMUP = 20
INTERVAL = 0.020
TARGETS = {"p50_ms": "<= 1.5x baseline", "p99_ms": "<= 1.5x baseline"}


def run(*, smoke: bool) -> dict:
    harness.reset()
    with harness.Consumers(relay=True, note_done=True):
        outbox, baseline = measure(SMOKE_EVENTS if smoke else EVENTS, sides=(work.publish_priced, work.send_priced))
    figures, base = harness.latency_figures(outbox), harness.latency_figures(baseline)
    return {"figures": figures, "baseline": base, "ratio": harness.ratios(figures, base), "targets": TARGETS}


def measure(events: int, *, sides: tuple) -> list[list[float]]:
    """Milliseconds from commit to handler done, per side, ``events`` each, one tick every ``INTERVAL``."""
    committed: list[dict[str, float]] = [{} for _ in sides]
    began = time.monotonic()
    for tick in range(WARMUP + events):
        order = list(enumerate(sides)) if tick % 2 == 0 else list(reversed(list(enumerate(sides))))
        for slot, (index, side) in enumerate(order):
            pause = began + (tick + slot / len(sides)) * INTERVAL - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            event_id, at = work.committed(side)
            if tick >= WARMUP:
                committed[index][event_id] = at
    expected = (WARMUP + events) * len(sides)
    measured = [event_id for side in committed for event_id in side]

    def all_done() -> dict[str, float] | None:
        if harness.done_count() < expected:
            return None
        done = harness.done_times()
        return done if all(event_id in done for event_id in measured) else None

    done = harness.wait_until(all_done, timeout=60, what=f"{expected} handlers done")
    return [[(done[event_id] - at) * 1000 for event_id, at in side.items()] for side in committed]
