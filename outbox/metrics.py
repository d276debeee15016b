"""Prometheus metrics the outbox records as it works, and what ``/metrics`` shows.

Counters and histograms are recorded in the process that does the work (the
relay, a worker). With ``PROMETHEUS_MULTIPROC_DIR`` set (settings do it) they
are written to files there, which the web process sums at scrape time. The
state of the tables (deliveries not done, dead letters, the oldest waiting
age) is read from the database when ``/metrics`` is scraped, by
:class:`OutboxCollector`, through the partial index of unfinished rows only.
"""

import os
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import selectors

EVENTS_PUBLISHED = Counter(
    "outbox_events_published_total", "Events written to the outbox, counted as the relay fans them out.", ["type"]
)
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
# Done deliveries are never counted in the table (that would scan every
# finished row); the handler runner counts them as it finishes them.
DELIVERIES_DONE = Counter("outbox_deliveries_done_total", "Deliveries finished successfully.", ["handler"])
REDISPATCHES = Counter(
    "outbox_redispatches_total",
    "Dispatched deliveries sent again when their lease ran out: before any handler started them "
    "(not_started: no attempt spent), or after (worker_lost: the attempt is recorded as failed).",
    ["reason"],
)
LEASES_RENEWED = Counter(
    "outbox_leases_renewed_total",
    "Leases that ran out on deliveries still waiting in their queue (nothing sent after them has started): "
    "renewed instead of sending a second copy.",
)
DUPLICATES_DROPPED = Counter(
    "outbox_duplicates_dropped_total",
    "Deliveries a runner was given and did not run because they were not theirs to run: already finished, "
    "sent again since (another dispatch token), or being run elsewhere (messages), or already in the "
    "handler's inbox (inbox).",
    ["by"],
)

CIRCUITS_OPENED = Counter(
    "outbox_circuit_opened_total",
    "Times a handler's circuit breaker opened (consecutive failures, or a failed probe).",
    ["handler"],
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def record_events_relayed(types: Iterable[str]) -> None:
    """Count relayed events by type (called once their fan-out committed)."""
    for event_type in types:
        EVENTS_PUBLISHED.labels(event_type).inc()


def record_deliveries_done(handlers: Iterable[str]) -> None:
    for handler in handlers:
        DELIVERIES_DONE.labels(handler).inc()


def record_redispatches(*, resent: int, lost: int, renewed: int = 0) -> None:
    if renewed:
        LEASES_RENEWED.inc(renewed)
    if resent:
        REDISPATCHES.labels("not_started").inc(resent)
    if lost:
        REDISPATCHES.labels("worker_lost").inc(lost)


def record_dropped(count: int) -> None:
    if count:
        DUPLICATES_DROPPED.labels("message").inc(count)


def record_inbox_duplicate(handler: str) -> None:
    DUPLICATES_DROPPED.labels("inbox").inc()


def record_circuit_opened(handler: str) -> None:
    CIRCUITS_OPENED.labels(handler).inc()


CIRCUIT_STATES = ("closed", "open", "half_open", "paused")


def circuit_metrics() -> Iterator[Metric]:
    """Each handler's circuit: one series per state, 1 for the one it is in ("paused" over any other)."""
    state = GaugeMetricFamily(
        "outbox_circuit_state",
        "A handler's circuit breaker: 1 for the state it is in (closed, open, half_open, or paused by staff).",
        labels=["handler", "state"],
    )
    failures = GaugeMetricFamily(
        "outbox_circuit_consecutive_failures", "Failures in a row counted by a handler's breaker.", labels=["handler"]
    )
    for circuit in selectors.handler_circuits():
        current = "paused" if circuit.paused else circuit.state
        for name in CIRCUIT_STATES:
            state.add_metric([circuit.handler, name], float(name == current))
        failures.add_metric([circuit.handler], circuit.consecutive_failures)
    yield from (state, failures)


class OutboxCollector(Collector):
    """Deliveries not done per handler and status, dead letters, the oldest waiting age (one query); held deliveries."""

    def collect(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "outbox_deliveries",
            "Deliveries not done, per handler and status (done ones: outbox_deliveries_done_total).",
            labels=["handler", "status"],
        )
        oldest = GaugeMetricFamily(
            "outbox_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery not yet done (pending or dispatched), per handler; 0 when none waits.",
            labels=["handler"],
        )
        dead = GaugeMetricFamily(
            "outbox_dead_letters", "Dead deliveries not yet retried or discarded, per handler.", labels=["handler"]
        )
        for row in selectors.handler_statuses():
            for state in ("pending", "dispatched", "dead"):
                deliveries.add_metric([row.handler, state], getattr(row, state))
            age = row.oldest_pending_age.total_seconds() if row.oldest_pending_age else 0.0
            oldest.add_metric([row.handler], age)
            dead.add_metric([row.handler], row.dead)
        yield from (deliveries, oldest, dead)
        yield from circuit_metrics()
        yield self._held()

    def _held(self) -> Metric:
        """Deliveries of ordered ``on_dead="stop"`` handlers held behind a dead letter: one more query."""
        held = GaugeMetricFamily(
            "outbox_held_deliveries",
            "Pending deliveries of an ordered handler held behind a dead, unresolved earlier delivery of their "
            'aggregate (on_dead="stop"), per handler: released when that letter is retried or discarded.',
            labels=["handler"],
        )
        for handler, count in selectors.held_behind_dead_counts().items():
            held.add_metric([handler], count)
        return held

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration, and no query then


class _ThisProcess(Collector):
    """The default registry, when there is no multiprocess folder to read instead."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition() -> bytes:
    """The text ``/metrics`` answers: every process's counters plus the tables' state now."""
    registry = CollectorRegistry()
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        multiprocess.MultiProcessCollector(registry, path=folder)
    else:
        registry.register(_ThisProcess())
    registry.register(OutboxCollector())
    return generate_latest(registry)
