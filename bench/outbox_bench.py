"""Benchmarks of the outbox on real PostgreSQL, Redis, relay and Celery worker processes.

    .venv/bin/python bench/outbox_bench.py latency      # commit -> handler done, light load
    .venv/bin/python bench/outbox_bench.py throughput   # deliveries done per second under load
    .venv/bin/python bench/outbox_bench.py backlog      # deliveries per second draining a backlog
    .venv/bin/python bench/outbox_bench.py relay        # events one relay fans out and dispatches per second
    .venv/bin/python bench/outbox_bench.py publish      # what publishing adds to a transaction
    .venv/bin/python bench/outbox_bench.py claims       # relay claim time, empty vs a million finished rows
    .venv/bin/python bench/outbox_bench.py all --runs 3 --save bench/results/now.json
    .venv/bin/python bench/outbox_bench.py all --baseline bench/results/before.json

Each figure is the median over ``--runs`` runs (this machine is small and
noisy). With ``--baseline`` each figure is printed with its ratio to the
saved one. The scratch database is ``oms_bench_outbox`` (``BENCH_DATABASE_URL``),
created and migrated on first use; Redis DB 13 is the broker.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/oms_bench_outbox")
os.environ.update(
    DJANGO_SETTINGS_MODULE="config.settings.test",
    TEST_DATABASE_URL=DB_URL,
    TEST_BROKER_URL=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
    TEST_CACHE_URL=os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/14"),
    LOG_LEVEL="WARNING",
)

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from outbox.models import Delivery, InboxEntry, OutboxEvent  # noqa: E402
from outbox.publishing import publish  # noqa: E402
from tests.outbox.probe.events import Pinged, Priced  # noqa: E402
from tests.outbox.probe.models import Effect, Switch  # noqa: E402
from tests.support.events import outbox_row  # noqa: E402
from tests.support.processes import ChildProcess, start_relay, start_worker  # noqa: E402

PROBE_QUEUES = "outbox,probe"
BENCH_SKU = "PEN-BLUE"  # seed_demo stocks 10,000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=[*BENCHES, "all"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--save", type=Path, help="write the medians as JSON, to compare against later")
    parser.add_argument("--baseline", type=Path, help="print ratios to the medians saved in this file")
    args = parser.parse_args()
    prepare_database()
    names = list(BENCHES) if args.which == "all" else [args.which]
    results: dict[str, float] = {}
    for name in names:
        runs = [BENCHES[name]() for _ in range(args.runs)]
        for key in runs[0]:
            results[key] = statistics.median(run[key] for run in runs)
            print_figure(key, results[key], [run[key] for run in runs], args.baseline)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(results, indent=2))


def print_figure(key: str, median: float, runs: list[float], baseline: Path | None) -> None:
    line = f"{key:<42} {median:>12.2f}   (runs: {', '.join(f'{r:.2f}' for r in runs)})"
    if baseline and baseline.exists():
        before = json.loads(baseline.read_text()).get(key)
        if before:
            line += f"   x{median / before:.2f} vs baseline {before:.2f}"
    print(line, flush=True)


# Set-up ----------------------------------------------------------------------------------------


def prepare_database() -> None:
    name = connection.settings_dict["NAME"]
    with psycopg.connect(DB_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)


def reset_tables() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE outbox_inbox, outbox_delivery, outbox_event, probe_effect, probe_switch")
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


class Processes:
    """A relay and a worker, stopped on exit."""

    def __init__(self, *, concurrency: int = 2, relay: bool = True, **env: str) -> None:
        self.children: list[ChildProcess] = []
        self.concurrency, self.relay, self.env = concurrency, relay, env

    def __enter__(self) -> "Processes":
        if self.relay:
            self.children.append(start_relay(poll_seconds=0.5, **self.env))
        pool = os.environ.get("BENCH_POOL", "prefork")
        self.children.append(start_worker(queues=PROBE_QUEUES, concurrency=self.concurrency, pool=pool, **self.env))
        return self

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            child.stop()


def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark timed out after {timeout}s")
        time.sleep(0.01)


def priced() -> Priced:
    return Priced(thing_id=uuid.uuid4(), price={"amount": "9.99", "currency": "EUR"})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# Benchmarks ------------------------------------------------------------------------------------


def latency(events: int = 1000, interval: float = 0.01) -> dict[str, float]:
    """Commit -> handler done, one event every 10 ms, through each push path.

    ``notify``: the dedicated relay process woken by PostgreSQL NOTIFY.
    ``kick``: no relay process; each commit kicks (coalesced) a relay task to a worker.
    """
    figures = {}
    for path, processes in (
        ("notify", lambda: Processes(OUTBOX_KICK_ON_COMMIT="false")),
        ("kick", lambda: Processes(relay=False)),
    ):
        reset_tables()
        committed: dict[uuid.UUID, float] = {}
        with processes(), outbox_settings(KICK_ON_COMMIT=path == "kick"):
            time.sleep(1)  # let the processes settle
            for _ in range(events):
                with transaction.atomic():
                    row = publish(priced())
                committed[row.event_id] = time.time()
                time.sleep(interval)
            wait_until(lambda: InboxEntry.objects.count() >= events, timeout=60)
        handled = dict(InboxEntry.objects.values_list("event_id", "handled_at"))
        millis = [(handled[e].timestamp() - t) * 1000 for e, t in committed.items()]
        figures[f"latency_{path}_p50_ms"] = percentile(millis, 0.5)
        figures[f"latency_{path}_p99_ms"] = percentile(millis, 0.99)
    return figures


def outbox_settings(**overrides: object):
    from django.conf import settings
    from django.test import override_settings

    return override_settings(OUTBOX={**settings.OUTBOX, **overrides})


def throughput(
    seconds: float = 10.0,
    rate: float = 800.0,
    writers: int = 2,
    concurrency: int = int(os.environ.get("BENCH_CONCURRENCY", 2)),
) -> dict[str, float]:
    """Deliveries done per second while writers offer ``rate`` events per second, ten per transaction.

    Each event (``probe.Pinged``) has three subscribers, as ``OrderConfirmed``
    has (payments, inventory, notifications), so 800 events/s offer 2,400
    deliveries/s. Writers pace themselves to the offered rate instead of
    publishing as fast as they can, which on two cores would only starve the
    relay and workers of CPU.
    """
    reset_tables()
    stop = threading.Event()

    def write() -> None:
        interval, next_at = 10 * writers / rate, time.monotonic()
        try:
            while not stop.is_set():
                with transaction.atomic():
                    for _ in range(10):
                        publish(Pinged(thing_id=uuid.uuid4()))
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        finally:
            connection.close()

    with Processes(concurrency=concurrency, OUTBOX_KICK_ON_COMMIT="false"), outbox_settings(KICK_ON_COMMIT=False):
        threads = [threading.Thread(target=write) for _ in range(writers)]
        for thread in threads:
            thread.start()
        time.sleep(2)  # warm up
        start_done, start_published, start = InboxEntry.objects.count(), OutboxEvent.objects.count(), time.monotonic()
        time.sleep(seconds)
        done = InboxEntry.objects.count() - start_done
        published = OutboxEvent.objects.count() - start_published
        elapsed = time.monotonic() - start
        stop.set()
        for thread in threads:
            thread.join()
    return {"load_offered_events_per_s": published / elapsed, "load_deliveries_per_s": done / elapsed}


def write_backlog(events: int) -> None:
    """Empty tables, then ``events`` unrelayed events written straight into the log."""
    reset_tables()
    with transaction.atomic():
        for start in range(0, events, 1000):
            OutboxEvent.objects.bulk_create([outbox_row(priced()) for _ in range(min(1000, events - start))])


def backlog(events: int = 20_000, concurrency: int = int(os.environ.get("BENCH_CONCURRENCY", 2))) -> dict[str, float]:
    """Deliveries per second draining events that were written while no relay ran."""
    write_backlog(events)
    with Processes(concurrency=concurrency, OUTBOX_KICK_ON_COMMIT="false", relay=False) as processes:
        began = time.monotonic()
        processes.children.append(start_relay(poll_seconds=0.5, OUTBOX_KICK_ON_COMMIT="false"))
        wait_until(lambda: InboxEntry.objects.count() >= events, timeout=300)
        elapsed = time.monotonic() - began
    return {"backlog_deliveries_per_s": events / elapsed}


def relay_rate(events: int = 20_000) -> dict[str, float]:
    """Events a single relay fans out and dispatches per second (tasks sent to Redis, no worker)."""
    from outbox.relay import relay_pass

    write_backlog(events)
    with outbox_settings(KICK_ON_COMMIT=False):
        began = time.perf_counter()
        relayed = 0
        while relayed < events:
            relayed += relay_pass(max_seconds=60).fanned_out
        elapsed = time.perf_counter() - began
    return {"relay_events_per_s": events / elapsed}


def publish_cost(transactions: int = 2000) -> dict[str, float]:
    """A typical small business transaction (insert one row, update another), with and without one event."""
    reset_tables()
    switch = Switch.objects.create(name="bench")

    def business(with_event: bool) -> float:
        began = time.perf_counter()
        for _ in range(transactions):
            with transaction.atomic():
                Effect.objects.create(handler="bench", event_id=uuid.uuid4(), aggregate_id="x")
                Switch.objects.filter(id=switch.id).update(on=True)
                if with_event:
                    publish(priced())
        return (time.perf_counter() - began) / transactions * 1e6

    with outbox_settings(KICK_ON_COMMIT=False):
        business(False), business(True)  # warm up
        plain, published = business(False), business(True)
    return {
        "tx_plain_us": plain,
        "tx_with_publish_us": published,
        "publish_overhead_pct": (published / plain - 1) * 100,
        "order_services_publish_share_pct": _publish_share_of_order_services(),
    }


def _publish_share_of_order_services(orders: int = 300) -> float:
    """The share of the real ``order_place`` + ``order_confirm`` transactions spent in ``publish``."""
    from django.contrib.auth import get_user_model

    import orders.services as order_services

    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    customer = get_user_model().objects.get(username="customer")
    spent = [0.0]
    real_publish = order_services.publish

    def timed_publish(*args, **kwargs):
        began = time.perf_counter()
        try:
            return real_publish(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - began

    address = {"name": "A", "line1": "1 Road", "city": "Town", "postal_code": "1000", "country": "BE"}
    order_services.publish = timed_publish
    try:
        with outbox_settings(KICK_ON_COMMIT=False):
            began = time.perf_counter()
            for _ in range(orders):
                order = order_services.order_place(
                    customer_id=customer.id,
                    lines=[{"sku": BENCH_SKU, "quantity": 1}],
                    shipping_address=address,
                    payment_token="tok_visa",
                )
                order_services.order_confirm(order_id=order.id)
            total = time.perf_counter() - began
    finally:
        order_services.publish = real_publish
    return spent[0] / total * 100


def claims(finished_rows: int = 1_000_000, samples: int = 200) -> dict[str, float]:
    """Time of one relay claim of one new event, with no history and with a million finished rows."""
    from outbox.relay import dispatch_due, fan_out

    def claim_ms() -> float:
        timings = []
        for _ in range(samples):
            with transaction.atomic():
                publish(priced())
            began = time.perf_counter()
            fan_out(batch_size=500)
            dispatch_due(batch_size=500)
            timings.append((time.perf_counter() - began) * 1000)
            Delivery.objects.filter(status="dispatched").update(status="done")
        return statistics.median(timings)

    with outbox_settings(KICK_ON_COMMIT=False):
        reset_tables()
        empty = claim_ms()
        _fill_history(finished_rows)
        full = claim_ms()
    return {"claim_ms_empty": empty, "claim_ms_1m_finished": full, "claim_ratio_full_vs_empty": full / empty}


def _fill_history(rows: int) -> None:
    """A million relayed events and their done deliveries, written by SQL for speed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO outbox_event (event_id, type, version, occurred_at, aggregate_type, aggregate_id,
                                      correlation_id, traceparent, payload, relayed_at)
            SELECT gen_random_uuid(), 'probe.Priced', 2, now(), 'bench.History', g::text, gen_random_uuid(), '',
                   '{}'::jsonb, now()
            FROM generate_series(1, %s) g
            """,
            [rows],
        )
        cursor.execute(
            """
            INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, last_error,
                                         traceback, created_at, finished_at)
            SELECT id, 'probe.record_price', 'probe', 'done', 1, now(), '', '', now(), now()
            FROM outbox_event WHERE aggregate_type = 'bench.History'
            """
        )
        cursor.execute("ANALYZE outbox_event; ANALYZE outbox_delivery")


BENCHES: dict[str, Callable[[], dict[str, float]]] = {
    "latency": latency,
    "throughput": throughput,
    "backlog": backlog,
    "relay": relay_rate,
    "publish": publish_cost,
    "claims": claims,
}

if __name__ == "__main__":
    main()
