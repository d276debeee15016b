"""The embedded default, run as `make run` runs it: SQLite, the file-system broker, a real worker.

This is also what exercises the outbox's portable (ORM) paths, which the
PostgreSQL suite replaces with hand-written statements.
"""

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT, ChildProcess, wait_for

pytestmark = pytest.mark.workers

PLACE_CONFIRM_AND_WAIT = """
import time
from django.contrib.auth import get_user_model
from orders.models import Order
from orders.services import order_confirm, order_place
customer = get_user_model().objects.get(username="customer")
address = {"name": "Ada", "line1": "1 Road", "city": "Ghent", "postal_code": "9000", "country": "BE"}
order = order_place(customer_id=customer.id, lines=[{"sku": "PEN-BLUE", "quantity": 2}, {"sku": "MUG-CERAMIC",
    "quantity": 1}], shipping_address=address, payment_token="tok_visa")
order_confirm(order_id=order.id)
deadline = time.monotonic() + 60
while Order.objects.get(id=order.id).status not in ("shipped", "cancelled") and time.monotonic() < deadline:
    time.sleep(0.2)
print("final status:", Order.objects.get(id=order.id).status)
"""

ORDERS_TIMED = 5
SECONDS_TO_SHIP = 1.0  # the median order, from placing it to shipped: a few 50 ms broker polls and the handlers

# Orders placed and confirmed one at a time, as the shop's form does (one request each), each timed
# until it is shipped; the first, whose handlers pay for the worker's imports, is not counted.
PLACE_AND_TIME = """
import json, time
from django.contrib.auth import get_user_model
from orders.models import Order
from orders.services import order_confirm, order_place
customer = get_user_model().objects.get(username="customer")
address = {"name": "Ada", "line1": "1 Road", "city": "Ghent", "postal_code": "9000", "country": "BE"}

def ship_one():
    start = time.monotonic()
    order = order_place(customer_id=customer.id, lines=[{"sku": "PEN-BLUE", "quantity": 1}],
        shipping_address=address, payment_token="tok_visa")
    order_confirm(order_id=order.id)
    while Order.objects.get(id=order.id).status not in ("shipped", "cancelled"):
        if time.monotonic() > start + 30:
            return None, Order.objects.get(id=order.id).status
        time.sleep(0.01)
    return time.monotonic() - start, Order.objects.get(id=order.id).status

ship_one()
print(json.dumps([ship_one() for _ in range(%(orders)d)]))
"""

COUNT_ROWS = """
from outbox.models import Delivery, InboxEntry, OutboxEvent
print(f"events {OutboxEvent.objects.count()}, deliveries {Delivery.objects.filter(status='done').count()}, "
      f"inbox {InboxEntry.objects.count()}")
"""


@pytest.fixture
def embedded_env(tmp_path) -> dict[str, str]:
    """Nothing configured but a folder of its own: what a newcomer's machine has."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "CACHE_URL", "TEST_", "PROMETHEUS_"))
    }
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_an_order_confirmed_on_the_embedded_default_reaches_shipped(embedded_env):
    # given a migrated SQLite database with the demo data, a worker on every queue and a polling relay
    _manage(embedded_env, "migrate", "--noinput")
    _manage(embedded_env, "migrate", "--database", "sandbox", "--noinput")  # the sandbox providers' own file
    _manage(embedded_env, "seed_demo")
    worker = ChildProcess(
        "embedded-worker",
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q",
         "outbox,orders,payments,inventory,shipping,notifications", "-c", "2", "--without-mingle",
         "--without-gossip", "--loglevel", "INFO"],
        embedded_env,
    )  # fmt: skip
    relay = ChildProcess(
        "embedded-relay", [sys.executable, "manage.py", "outbox_relay", "--poll-seconds", "0.2"], embedded_env
    )
    try:
        wait_for(lambda: " ready." in worker.output(), timeout=60, what=worker.output)
        # when a customer's order is placed and confirmed
        out = _manage(embedded_env, "shell", "-c", PLACE_CONFIRM_AND_WAIT)
        # then the whole saga ran through the file-system broker and SQLite
        assert "final status: shipped" in out, worker.output()[-3000:]
        # and retention prunes its done deliveries there too (no advisory lock on SQLite: it just runs), while
        # the inbox rows stay inside their window and every event stays
        pruned = _manage(embedded_env, "outbox_prune", "--days", "0")
        assert re.fullmatch(r"pruned [1-9]\d* done deliveries and 0 inbox rows older than 0 days, .*\n", pruned)
        left = _manage(embedded_env, "shell", "-c", COUNT_ROWS)
        assert re.search(r"^events [1-9]\d*, deliveries 0, inbox [1-9]\d*$", left, re.MULTILINE), left
    finally:
        worker.stop()
        relay.stop()


def test_orders_ship_within_a_second_on_make_runs_processes(embedded_env):
    # given make run's worker and beat, started by honcho from the Procfile as make run starts them
    _manage(embedded_env, "migrate", "--noinput")
    _manage(embedded_env, "migrate", "--database", "sandbox", "--noinput")
    _manage(embedded_env, "seed_demo")
    bin_dir = str(Path(sys.executable).parent)
    env = {**embedded_env, "PATH": f"{bin_dir}:{embedded_env['PATH']}", "WORKER_LOGLEVEL": "INFO"}
    honcho = ChildProcess(
        "embedded-make-run", [os.path.join(bin_dir, "honcho"), "start", "-f", "Procfile", "worker", "beat"], env
    )
    try:
        wait_for(lambda: " ready." in honcho.output(), timeout=60, what=honcho.output)
        # when a customer places and confirms orders, one at a time
        out = _manage(embedded_env, "shell", "-c", PLACE_AND_TIME % {"orders": ORDERS_TIMED})
        timed = json.loads(out.strip().splitlines()[-1])
        # then each shipped, the median within a second of being placed
        assert [status for _, status in timed] == ["shipped"] * ORDERS_TIMED, honcho.output()[-3000:]
        seconds = sorted(s for s, _ in timed)
        print(f"placed -> shipped on make run's processes: {', '.join(f'{s:.3f}' for s in seconds)} s")
        assert statistics.median(seconds) < SECONDS_TO_SHIP, seconds
        assert "Unrecoverable error" not in honcho.output(), honcho.output()[-3000:]
    finally:
        honcho.stop()
