"""Prometheus metrics the outbox records as it works.

Counters and histograms are recorded in the process that does the work (the
relay, a worker); the state of the tables (pending, dead, oldest age) is read
from the database when ``/metrics`` is scraped, by :class:`OutboxCollector`.
"""

from prometheus_client import Counter, Histogram

EVENTS_PUBLISHED = Counter("outbox_events_published_total", "Events written to the outbox.", ["type"])
HANDLER_SECONDS = Histogram(
    "outbox_handler_duration_seconds",
    "Time a handler took, per attempt.",
    ["handler"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RELAY_BATCH_SECONDS = Histogram(
    "outbox_relay_batch_duration_seconds",
    "Time one relay batch (fan-out and dispatch) took.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
