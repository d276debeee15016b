"""scale: the outbox's drain, latency and load with 1,000,000 finished events in its tables, against empty tables.

The history (events relayed, deliveries done, inbox rows, as a month of
production leaves them) lives in a database of its own, ``<bench database>_h<rows>``,
filled by SQL on first use (20,000 rows with ``--smoke``; about half a minute
for the million, so it is kept, and filled again only when its count is off;
each measurement deletes its own rows after it); the empty
figures come from the bench database, measured in the same run. On each:
``DRAIN_EVENTS`` events drained as ``drain`` does (worker and relay started once
the backlog is in), then ``latency``'s light load (``LATENCY_EVENTS`` events,
outbox only), then ``throughput``'s producers for a ``LOAD_S`` window (``load_*``), the same
processes still running (both noting their commits in Redis, as ``latency``
needs, during the drain too). Which goes first alternates run by run.
"baseline" holds the empty tables' figures: a ratio is full / empty, so the
rates want >= 0.9 and the latencies <= 1.11 (as fast within 10 %).
"""

import sys
import time

from django.db import connection, transaction

from bench import drain, harness, latency, throughput, work

HISTORY_ROWS, SMOKE_HISTORY_ROWS = 1_000_000, 20_000
DRAIN_EVENTS, SMOKE_DRAIN_EVENTS = 3_000, 1_000
LATENCY_EVENTS, SMOKE_LATENCY_EVENTS = 150, 30
LOAD_S, SMOKE_LOAD_S = (0.5, 1.5), (0.5, 1.0)  # throughput's warm-up and window
HISTORY = "bench.History"
HISTORY_HANDLED_AT = "2000-01-01T00:00:00Z"  # tells the history's inbox rows from a measurement's
TARGETS = {
    "deliveries_per_s": ">= 0.9x empty tables",
    "p50_ms": "<= 1.11x empty tables (within 10 % of their speed)",
    "p99_ms": "<= 1.11x empty tables (within 10 % of their speed)",
    "load_deliveries_per_s": ">= 0.9x empty tables",
}

_checked: set[str] = set()  # history databases whose fill this process has checked
_ends: dict[str, tuple[int, int]] = {}
_runs = 0


def run(*, smoke: bool) -> dict:
    rows = SMOKE_HISTORY_ROWS if smoke else HISTORY_ROWS
    counts = (
        (SMOKE_DRAIN_EVENTS, SMOKE_LATENCY_EVENTS, SMOKE_LOAD_S) if smoke else (DRAIN_EVENTS, LATENCY_EVENTS, LOAD_S)
    )
    full_db = f"{connection.settings_dict['NAME']}_h{rows}"
    harness.ensure_database(full_db)
    with harness.use_database(full_db):
        if full_db not in _checked and history_rows() != rows:
            began = time.monotonic()
            fill_history(rows)
            print(f"bench scale: {rows:,} finished rows written in {time.monotonic() - began:.1f}s", file=sys.stderr)
            _ends.pop(full_db, None)
        _checked.add(full_db)
    global _runs
    _runs += 1
    for turn in (0, 1) if _runs % 2 else (1, 0):  # which table size goes first alternates run by run
        if turn == 0:
            empty = measure(*counts, clean=harness.reset)
            empty["history_rows"] = 0
        else:
            with harness.use_database(full_db):
                full = measure(*counts, clean=clean_history_db)
                full["history_rows"] = history_rows()
    keys = ("deliveries_per_s", "p50_ms", "p99_ms", "load_deliveries_per_s")
    return {
        "figures": full,
        "baseline": empty,
        "ratio": harness.ratios({k: full[k] for k in keys}, {k: empty[k] for k in keys}),
        "targets": TARGETS,
    }


def measure(drain_events: int, latency_events: int, load_seconds: tuple[float, float], *, clean) -> dict[str, float]:
    clean()
    with harness.Consumers(parked=True, note_done=True) as consumers:
        drain.backlog(work.publish_priced, drain_events)
        began = time.monotonic()
        consumers.consume()
        consumers.start_relay()
        figures = drain.finish(drain_events, began)
        del figures["startup_s"]
        harness.redis_client(harness.BROKER_URL).delete(harness.DONE_LIST)  # the drain's notes
        (millis,) = latency.measure(latency_events, sides=(work.publish_priced,))
        loaded = throughput.load(work.publish_pinged, *load_seconds)
    clean()
    return {
        **figures,
        **harness.latency_figures(millis),
        "load_deliveries_per_s": loaded["deliveries_per_s"],
        "load_events_committed_per_s": loaded["events_committed_per_s"],
    }


def fill_history(rows: int) -> None:
    """``rows`` relayed events, each with a done delivery and its inbox row, written by SQL for speed."""
    harness.reset()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO outbox_event (event_id, type, version, occurred_at, aggregate_type, aggregate_id,
                                      correlation_id, traceparent, payload, relayed_at)
            SELECT gen_random_uuid(), 'probe.Priced', 2, now(), %s, g::text, gen_random_uuid(), '',
                   '{"thing_id": "00000000-0000-0000-0000-000000000000",
                     "price": {"amount": "9.99", "currency": "EUR"}}'::jsonb, now()
            FROM generate_series(1, %s) g
            """,
            [HISTORY, rows],
        )
        cursor.execute(
            """
            INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, last_error,
                                         traceback, created_at, dispatched_at, started_at, finished_at,
                                         redispatches, crashes, error_type, error_pattern)
            SELECT id, 'probe.record_price', 'probe', 'done', 1, now(), '', '', now(), now(), now(), now(),
                   0, 0, '', ''
            FROM outbox_event WHERE aggregate_type = %s
            """,
            [HISTORY],
        )
        cursor.execute(
            """
            INSERT INTO outbox_inbox (handler, event_id, handled_at)
            SELECT 'probe.record_price', event_id, %s FROM outbox_event WHERE aggregate_type = %s ORDER BY id
            """,
            [HISTORY_HANDLED_AT, HISTORY],
        )
        cursor.execute("ANALYZE outbox_event, outbox_delivery, outbox_inbox")


def clean_history_db() -> None:
    """Everything but the history: the last measurement's events, deliveries, inbox rows and effects.

    The history holds the lowest ids (it was written first, into empty tables).
    """
    last_event, last_inbox = _history_ends()
    with transaction.atomic(), connection.cursor() as cursor:
        # A scratch database's reset, not the shop's: the log is append-only (migration 0011's trigger),
        # so this transaction runs with triggers off (as a replica applies rows; the bench connects as a
        # superuser). The rows go children first, so no foreign key is left dangling.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM outbox_inbox WHERE id > %s", [last_inbox])
        cursor.execute("DELETE FROM outbox_delivery WHERE event_id > %s", [last_event])
        cursor.execute("DELETE FROM outbox_event WHERE id > %s", [last_event])
        others = [t for t in harness.bench_tables() if t not in ("outbox_event", "outbox_delivery", "outbox_inbox")]
        cursor.execute(f"TRUNCATE {', '.join(others)} RESTART IDENTITY")
    harness.purge_redis()


def _history_ends() -> tuple[int, int]:
    """The history's last event id and inbox id (looked up once per database)."""
    name = connection.settings_dict["NAME"]
    if name not in _ends:
        with connection.cursor() as cursor:
            cursor.execute("SELECT max(id) FROM outbox_event WHERE aggregate_type = %s", [HISTORY])
            last_event = cursor.fetchone()[0] or 0
            cursor.execute("SELECT max(id) FROM outbox_inbox WHERE handled_at <= %s", [HISTORY_HANDLED_AT])
            _ends[name] = (last_event, cursor.fetchone()[0] or 0)
    return _ends[name]


def history_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM outbox_event WHERE aggregate_type = %s", [HISTORY])
        return cursor.fetchone()[0]
