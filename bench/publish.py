"""Publish: what publishing events costs the transactions that publish them.

In this process, against the runner's database (its settings: the Redis cache
and broker the relay kick uses, kicks on as in every deployment):

- ``order_services_publish_share_pct``: the share of the real
  ``orders.services.order_place`` + ``order_confirm`` calls (each timed whole:
  its statements, its commit and the callbacks run after the commit) spent
  publishing: in ``outbox.publishing.publish`` (its INSERT round trip included)
  and in what the outbox left to run after the commit (the relay kick). Split
  into ``..._insert_share_pct`` (the ``publish`` call) and ``..._kick_share_pct``
  (the outbox's after-commit callbacks); ``publish_us`` per event, of which
  ``publish_sql_us`` waiting on its statements; ``kick_us`` per transaction.
- ``tx_plain_us`` / ``tx_with_publish_us``: a minimal business transaction
  (insert one row, update another) without and with one event published,
  interleaved in blocks; ``publish_overhead_pct`` the difference.

It deletes the deliveries of the events it published, and marks any it left
unrelayed as relayed, so no later bench's relay sends or fans them out (the
log itself is append-only).
Run alone (for development): ``python -m bench.publish [--smoke]``.
"""

import functools
import json
import secrets
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKU = "PEN-BLUE"  # seed_demo's
ADDRESS = {"name": "Bench", "line1": "1 Road", "city": "Town", "postal_code": "1000", "country": "BE"}


def run(*, smoke: bool) -> dict:
    from bench import harness

    harness.setup_once()
    _prepare_database()
    from django.db.models.functions import Now

    from outbox.models import Delivery, OutboxEvent

    first_new_event = (OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    try:
        figures = _order_services(orders=20 if smoke else 150, warm_up=5 if smoke else 30)
        figures.update(_business_transaction(blocks=2 if smoke else 6, per_block=50 if smoke else 300))
    finally:
        Delivery.objects.filter(event_id__gte=first_new_event).delete()  # publish created them, dispatched
        OutboxEvent.objects.filter(id__gte=first_new_event, relayed_at__isnull=True).update(relayed_at=Now())
    return {
        "figures": figures,
        "baseline": {},
        "ratio": {},
        "targets": {"order_services_publish_share_pct": "<= 10"},
    }


class Meter:
    """Time spent in ``publish``, in its SQL, and in the outbox's after-commit callbacks."""

    def __init__(self) -> None:
        self.publish = self.sql = self.kick = 0.0
        self.events = 0
        self.in_publish = False

    def timed_publish(self, publish):
        @functools.wraps(publish)
        def timed(*args, **kwargs):
            self.in_publish, began = True, time.perf_counter()
            try:
                return publish(*args, **kwargs)
            finally:
                self.publish += time.perf_counter() - began
                self.in_publish = False
                self.events += 1

        return timed

    def time_sql(self, execute, sql, params, many, context):
        if not self.in_publish:
            return execute(sql, params, many, context)
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.sql += time.perf_counter() - began

    def timed_hook(self, func):
        """``func``, timed if the outbox registered it (whatever it is called: a relay kick, a send)."""
        if not getattr(getattr(func, "func", func), "__module__", "").startswith("outbox"):
            return func

        @functools.wraps(func)
        def timed():
            began = time.perf_counter()
            try:
                func()
            finally:
                self.kick += time.perf_counter() - began

        return timed


@contextmanager
def metered(meter: Meter):
    """Meter every ``publish`` of ``orders.services`` and the after-commit callbacks of the default connection."""
    from django.db import connection

    import orders.services as order_services

    real_publish, real_hooks = order_services.publish, connection.run_and_clear_commit_hooks

    def run_hooks() -> None:
        # Wrapped once the transaction committed, when no more outbox code looks for its own callback in the list.
        # (savepoint ids, func, robust): Django's entries have three parts (the stubs say two).
        connection.run_on_commit = [(e[0], meter.timed_hook(e[1]), *e[2:]) for e in connection.run_on_commit]
        real_hooks()

    order_services.publish = meter.timed_publish(real_publish)
    connection.run_and_clear_commit_hooks = run_hooks  # type: ignore[method-assign]  # metered for the block
    try:
        with connection.execute_wrapper(meter.time_sql):
            yield meter
    finally:
        order_services.publish = real_publish
        del connection.run_and_clear_commit_hooks  # the class's method again


def _order_services(*, orders: int, warm_up: int) -> dict[str, float]:
    from django.contrib.auth import get_user_model

    from bench.harness import BENCH_CUSTOMER
    from orders.services import order_confirm, order_place

    customer = get_user_model().objects.get(username=BENCH_CUSTOMER)

    def one_order() -> tuple[float, float]:
        began = time.perf_counter()
        order = order_place(
            customer_id=customer.id,
            lines=[{"sku": SKU, "quantity": 1}],
            shipping_address=ADDRESS,
            payment_token="tok_visa",
        )
        placed = time.perf_counter()
        order_confirm(order_id=order.id)
        return placed - began, time.perf_counter() - placed

    with metered(Meter()):
        for _ in range(warm_up):
            one_order()
    with metered(Meter()) as meter:
        timings = [one_order() for _ in range(orders)]
    place_s, confirm_s = sum(t[0] for t in timings), sum(t[1] for t in timings)
    total = place_s + confirm_s
    return {
        "order_services_publish_share_pct": round((meter.publish + meter.kick) / total * 100, 2),
        "order_services_publish_insert_share_pct": round(meter.publish / total * 100, 2),
        "order_services_publish_kick_share_pct": round(meter.kick / total * 100, 2),
        "order_place_us": round(place_s / orders * 1e6, 1),
        "order_confirm_us": round(confirm_s / orders * 1e6, 1),
        "events_per_order": round(meter.events / orders, 2),
        "publish_us": round(meter.publish / meter.events * 1e6, 1),
        "publish_sql_us": round(meter.sql / meter.events * 1e6, 1),
        "kick_us": round(meter.kick / (2 * orders) * 1e6, 1),  # per transaction: two per order
    }


def _business_transaction(*, blocks: int, per_block: int) -> dict[str, float]:
    """Insert one row and update another, without and with one event; blocks of each, alternating."""
    from django.db import transaction

    from outbox.publishing import publish
    from tests.outbox.probe.events import Priced
    from tests.outbox.probe.models import Effect, Switch

    switch, _ = Switch.objects.get_or_create(name="bench-publish")
    handler = f"bench-publish-{uuid.uuid4().hex[:8]}"

    def block(with_event: bool) -> float:
        began = time.perf_counter()
        for _ in range(per_block):
            with transaction.atomic():
                Effect.objects.create(handler=handler, event_id=uuid.uuid4(), aggregate_id="x")
                Switch.objects.filter(id=switch.id).update(on=True)
                if with_event:
                    publish(Priced(thing_id=uuid.uuid4(), price={"amount": "9.99", "currency": "EUR"}))
        return (time.perf_counter() - began) / per_block * 1e6

    try:
        block(False), block(True)  # warm up
        plain, published = [], []
        for _ in range(blocks):
            plain.append(block(False))
            published.append(block(True))
    finally:
        Effect.objects.filter(handler=handler).delete()
    plain_us, published_us = statistics.median(plain), statistics.median(published)
    return {
        "tx_plain_us": round(plain_us, 1),
        "tx_with_publish_us": round(published_us, 1),
        "publish_overhead_pct": round((published_us / plain_us - 1) * 100, 1),
    }


def _prepare_database() -> None:
    """The runner's scratch database (see bench/harness.py), with seed_demo's catalogue and the bench's customer."""
    from bench import harness

    harness.ensure_database()
    harness.seed_shop(password=secrets.token_urlsafe(16))  # nobody signs in as it here


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps({"bench": "publish", **run(smoke="--smoke" in sys.argv)}))
