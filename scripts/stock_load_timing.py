"""Time loading a stock item of 10,000 events, with and without snapshots (medians of 5 runs each).

Run against a migrated database of its own (it writes a product and 10,000 stock events there, under a
fresh SKU each run; events are never deleted)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/oms_timing python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/oms_timing python scripts/stock_load_timing.py

Settings are ``config.settings.local`` (``DJANGO_SETTINGS_MODULE`` to change), with the relay's on-commit
kick off, so no broker is needed; snapshots every ``INVENTORY_SNAPSHOT_EVERY`` events (default 50).

The events are received through ``inventory.services.stock_receive`` (one transaction each, with its
snapshots). Then the item's state as of now is loaded both ways:

- without snapshots: ``inventory.selectors.stock_replayed``, the fold of the whole stream from its first event;
- with snapshots: ``inventory.selectors.stock_as_of(at=now)``, what the API's ``?as_of=`` reads: the latest
  snapshot plus the events after it.
"""

import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

EVENTS, RUNS = 10_000, 5


def median_ms(load: Callable[[], object]) -> float:
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        load()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    from django.conf import settings
    from django.utils import timezone

    from inventory import selectors, services

    sku = f"TIMING-{uuid.uuid4().hex[:8]}"
    services.product_ensure(sku=sku, name="Stock load timing", price=Decimal("1.00"))
    for _ in range(EVENTS):
        services.stock_receive(sku=sku, quantity=1)
    replayed, _ = selectors.stock_replayed(sku=sku)
    snapshotted = selectors.stock_as_of(sku=sku, at=timezone.now())
    assert (replayed.version, replayed.on_hand) == (EVENTS, EVENTS), replayed
    assert (snapshotted.on_hand, snapshotted.reserved) == (replayed.on_hand, replayed.reserved), snapshotted

    without = median_ms(lambda: selectors.stock_replayed(sku=sku))
    with_snapshots = median_ms(lambda: selectors.stock_as_of(sku=sku, at=timezone.now()))
    every = settings.INVENTORY_SNAPSHOT_EVERY
    print(f"{sku}: {EVENTS:,} events, a snapshot every {every} ({EVENTS % every} events after the latest)")
    print(f"median of {RUNS} loads of the state as of now:")
    print(f"  without snapshots (fold from the first event): {without:9.2f} ms")
    print(f"  with snapshots (latest snapshot + the rest):   {with_snapshots:9.2f} ms")
    print(f"  ratio: {without / with_snapshots:.0f}x faster with snapshots")


if __name__ == "__main__":
    if not os.environ.get("DATABASE_URL"):
        print("Set DATABASE_URL to a migrated database of its own (see the top of this script).", file=sys.stderr)
        sys.exit(2)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("OUTBOX_KICK_ON_COMMIT", "false")
    import django

    django.setup()
    main()
