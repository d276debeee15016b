"""Fulfilment under load: 200 orders placed and confirmed through the services, with a worker running.

Reports the wall time until every order reached a final state (shipped or
cancelled), per-order confirm-to-final latency, and the number of dead letters
(which must be 0). Runs against a scratch database (``oms_bench``, dropped and
re-created) with the test settings, one relay process and one worker
(``--concurrency 2``) started as the test suite starts them::

    .venv/bin/python bench/fulfilment.py [--orders 200] [--concurrency 2] [--no-kick]

By default every commit that publishes also enqueues a (coalesced) relay run
on the worker, as ``make run`` needs; ``--no-kick`` leaves relaying to the
dedicated relay process alone, as a production deployment with one would.

PostgreSQL and Redis must be running (``.ci/run`` starts them).
"""

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = os.environ.get("BENCH_DATABASE_NAME", "oms_bench")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ["TEST_DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("TEST_BROKER_URL", os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3"))
os.environ.setdefault("TEST_CACHE_URL", os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/4"))


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", user="postgres", host="127.0.0.1", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def setup_django() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed(products: int = 5):
    from django.contrib.auth import get_user_model

    from inventory.services import product_ensure

    customer = get_user_model().objects.create_user("bench", email="bench@shop.example", password="x")
    skus = [f"BENCH-{i}" for i in range(products)]
    for i, sku in enumerate(skus):
        product_ensure(sku=sku, name=f"Bench product {i}", price=Decimal(f"{5 + 7 * i}.99"), on_hand=1_000_000)
    return customer, skus


def place_and_confirm(customer, skus: list[str], count: int) -> list:
    from orders.services import LineRequest, order_confirm, order_place

    address = {"name": "Bench", "line1": "1 Load St", "city": "Berlin", "postal_code": "10115", "country": "DE"}
    rng = random.Random(42)
    ids = []
    for _ in range(count):
        lines = [LineRequest(sku, rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 3))]
        order = order_place(customer_id=customer.pk, lines=lines, shipping_address=address, payment_token="tok_visa")
        ids.append(order_confirm(order_id=order.id).id)
    return ids


def wait_until_final(ids: list, timeout: float) -> float:
    from orders.models import Order

    deadline = time.monotonic() + timeout
    while Order.objects.filter(id__in=ids).exclude(status__in=Order.FINAL).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"not all orders were final after {timeout}s")
        time.sleep(0.02)
    return time.monotonic()


def wait_until_settled(timeout: float) -> None:
    from outbox.models import Delivery, OutboxEvent

    deadline = time.monotonic() + timeout
    while (
        OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
        or Delivery.objects.filter(status__in=Delivery.UNFINISHED).exists()
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"deliveries still unfinished after {timeout}s")
        time.sleep(0.05)


def report(ids: list, started: float, placed: float, finished: float) -> dict:
    from orders.models import Order
    from outbox.models import Delivery, OutboxEvent

    orders = list(Order.objects.filter(id__in=ids))
    latencies = sorted(
        ((o.shipped_at or o.cancelled_at) - o.confirmed_at).total_seconds() * 1000 for o in orders if o.confirmed_at
    )
    return {
        "orders": len(orders),
        "shipped": sum(o.status == "shipped" for o in orders),
        "cancelled": sum(o.status == "cancelled" for o in orders),
        "place_and_confirm_seconds": round(placed - started, 2),
        "wall_seconds_until_all_final": round(finished - started, 2),
        "confirm_to_final_ms_p50": round(statistics.median(latencies), 1),
        "confirm_to_final_ms_p95": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        "events": OutboxEvent.objects.count(),
        "deliveries_done": Delivery.objects.filter(status="done").count(),
        "dead_letters": Delivery.objects.filter(status="dead").count(),
    }


def worker_task_seconds(log: str) -> dict:
    """Time the worker spent in each kind of task, from its log: where the wall time went."""
    found = re.findall(r"Task (outbox\.\w+)\[[^]]+\] succeeded in ([0-9.]+)s", log)
    totals: dict = {}
    for task, seconds in found:
        count, total = totals.get(task, (0, 0.0))
        totals[task] = (count + 1, total + float(seconds))
    return {task: {"tasks": count, "seconds": round(total, 2)} for task, (count, total) in sorted(totals.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--no-kick",
        action="store_true",
        help="commits do not enqueue relay runs: the dedicated relay process (LISTEN/NOTIFY) relays alone",
    )
    args = parser.parse_args()
    if args.no_kick:
        os.environ["OUTBOX_KICK_ON_COMMIT"] = "false"
    recreate_database()
    setup_django()
    from tests.support.processes import start_relay, start_worker

    customer, skus = seed()
    relay = start_relay(OUTBOX_LEASE_SECONDS="30")
    worker = start_worker(concurrency=args.concurrency, OUTBOX_LEASE_SECONDS="30")
    try:
        started = time.monotonic()
        ids = place_and_confirm(customer, skus, args.orders)
        placed = time.monotonic()
        finished = wait_until_final(ids, args.timeout)
        wait_until_settled(args.timeout)
        result = report(ids, started, placed, finished)
    finally:
        worker.stop()
        relay.stop()
    result["relay_kicks_on_commit"] = not args.no_kick
    result["worker_task_seconds"] = worker_task_seconds(worker.output())
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fulfilment-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    if result["dead_letters"]:
        raise SystemExit(f"{result['dead_letters']} dead letters")


if __name__ == "__main__":
    main()
