"""memory: the relay's and the worker's resident memory over a long drain, start against end.

20,000 ``Priced`` events are published while no consumer runs; then a worker
(two pool processes) and the relay process drain them. RSS is the summed
VmRSS of each process group (the worker's main process and its pool children)
read from /proc: at boot, at "start" (once the first 10 % are done, so that
imports and caches that fill on first use count as start, not as growth), and
at the end. ``*_growth`` is end / start; the target is at most 1.2. No
baseline: plain Celery has no relay, and its worker is the same process.
"""

import time

from bench import drain, harness, work

EVENTS, SMOKE_EVENTS = 12_000, 2_000
WARM_SHARE = 0.10
TARGETS = {"relay_growth": "<= 1.2", "worker_growth": "<= 1.2"}


def run(*, smoke: bool) -> dict:
    events = SMOKE_EVENTS if smoke else EVENTS
    harness.reset()
    with harness.Consumers(parked=True) as consumers:
        drain.backlog(work.publish_priced, events)
        consumers.consume()
        consumers.start_relay()
        boot = consumers.rss()
        harness.wait_until(lambda: harness.effects() >= events * WARM_SHARE, timeout=300, what="the first effects")
        start, began = consumers.rss(), time.monotonic()
        peak = dict(start)
        while harness.effects() < events:
            if time.monotonic() - began > 600:
                raise TimeoutError(f"the drain of {events} events did not finish in 600 s")
            peak = {role: max(peak[role], size) for role, size in consumers.rss().items()}
            time.sleep(0.5)
        end = consumers.rss()
    figures: dict[str, float] = {"events": events}
    for role in ("relay", "worker"):
        figures |= {
            f"{role}_rss_boot_mib": boot[role],
            f"{role}_rss_start_mib": start[role],
            f"{role}_rss_peak_mib": max(peak[role], end[role]),
            f"{role}_rss_end_mib": end[role],
            f"{role}_growth": end[role] / start[role],
        }
    return {"figures": figures, "baseline": {}, "ratio": {}, "targets": TARGETS}
