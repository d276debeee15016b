"""The chaos driver: a steady stream of orders through the REST API while faults hit the real system.

One run starts the whole system as processes (``tests.support.System``: a
broker of its own, two Celery workers, beat, the relay process, gunicorn),
with customer mail going to a real SMTP sink, then:

* places and confirms ``orders`` orders over REST from several client threads,
  paid with a mix of sandbox tokens, some cancelled by their customer at once;
* meanwhile runs :data:`FAULTS` one after the other, each when a share of the
  orders has been placed: SIGTERM a worker and the relay (graceful stops),
  a batch of deliveries of which two kill their worker, SIGKILL a worker in the
  middle of a handler, SIGKILL the relay, stop the broker for 10 s and bring it
  back empty, terminate the workers' and the web's PostgreSQL connections, stop
  every worker for more than ten leases; stock is received between them;
* then waits until nothing is outstanding, and hands the test a :class:`Run`
  to assert on.

The outcome an order must reach is decided by its token (and its customer's
cancellation), never by what happened to it: the point is that faults change
nothing but timing.
"""

import os
import random
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from prometheus_client import CollectorRegistry, multiprocess

from inventory.services import stock_receive
from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from outbox.publishing import publish
from tests.factories import ADDRESS
from tests.outbox.probe.events import Crashed, Slept
from tests.support.database import terminate_connections
from tests.support.processes import wait_for
from tests.support.rest import ShopClient
from tests.support.system import System

LEASE_SECONDS = float(os.environ.get("CHAOS_LEASE_SECONDS", "2"))
RATE = float(os.environ.get("CHAOS_RATE", "10"))  # orders placed per second
# Token -> share of the orders. "cancel" is tok_visa, cancelled by its customer right after confirming.
TOKENS = {"tok_visa": 45, "tok_mastercard": 5, "tok_flaky": 15, "tok_decline": 15, "tok_unavailable": 10, "cancel": 10}
POISON = ["", "", "sigkill", "", "", "exit", "", "", "", ""]  # one batch: two of its ten kill their worker


def system_settings(mail_env: dict[str, str], metrics_dir: str, side_channel_url: str) -> dict[str, str]:
    """Every process's environment: short leases that keep the time-limit rule, mail to the sink, quick sweeps."""
    return {
        "OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
        # The gap between the soft and the hard limit is for what a batch does after it commits
        # (sending the mails its notifications queued).
        "CELERY_TASK_TIME_LIMIT": str(0.8 * LEASE_SECONDS),
        "CELERY_TASK_SOFT_TIME_LIMIT": str(0.4 * LEASE_SECONDS),
        # The relay process runs: kicks would only add relay tasks to the workers (docs/operations.md).
        "OUTBOX_KICK_ON_COMMIT": "false",
        "NOTIFICATIONS_SEND_GRACE_SECONDS": "3",
        "NOTIFICATIONS_SWEEP_SECONDS": "1",
        "NOTIFICATIONS_RETRY_BASE_SECONDS": "1",
        "NOTIFICATIONS_RETRY_CAP_SECONDS": "5",
        # A worker reserves one task at a time, so that a task does not wait out its lease behind others.
        "CELERY_WORKER_PREFETCH_MULTIPLIER": "1",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "TEST_SIDE_CHANNEL_URL": side_channel_url,
        "LOG_LEVEL": "WARNING",
        **mail_env,
    }


@dataclass(frozen=True)
class PlannedOrder:
    number: int
    customer: int
    lines: tuple[tuple[str, int], ...]
    token: str  # a sandbox token, or "cancel": tok_visa, then cancelled by its customer
    payment_token: str


@dataclass
class PlacedOrder:
    plan: PlannedOrder
    order_id: str = ""
    cancel_status: int | None = None  # the answer to the customer's cancellation, if any
    problem: str = ""  # a request that did not end as a client expects


@dataclass
class Fault:
    name: str
    started: float
    ended: float = 0.0
    note: str = ""


@dataclass
class Run:
    broker: str
    placed: list[PlacedOrder]
    faults: list[Fault]
    received: dict[str, int]  # units received per SKU during the run
    poison_events: list[OutboxEvent]
    drain_seconds: float
    load_seconds: float
    metrics_dir: str
    resent_after_clean_stop: list[int]  # deliveries in flight at the graceful stops that had to be sent again
    shop: ShopClient
    timeline: list[tuple]

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.metrics_dir, name, **labels)


def metric(metrics_dir: str, name: str, **labels: str) -> float:
    """A counter summed over every process that wrote to ``metrics_dir`` (prometheus_client multiprocess files)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=metrics_dir)
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def plan_orders(count: int, *, customers: int, skus: list[str], seed: int) -> list[PlannedOrder]:
    rng = random.Random(seed)
    tokens = rng.choices(list(TOKENS), weights=list(TOKENS.values()), k=count)
    plan = []
    for number, token in enumerate(tokens):
        lines = tuple((sku, rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 3)))
        payment_token = "tok_visa" if token == "cancel" else token
        plan.append(PlannedOrder(number, number % customers, lines, token, payment_token))
    return plan


class Chaos:
    """One run of the stream and the faults against a started :class:`System`."""

    def __init__(
        self,
        system: System,
        clients: list[ShopClient],
        plan: list[PlannedOrder],
        *,
        skus: list[str],
        side_channel: Callable[[], object],
        rate: float = RATE,
        threads: int = 8,
    ) -> None:
        self.system, self.clients, self.plan, self.skus = system, clients, plan, skus
        self.side_channel = side_channel
        self.rate, self.threads = rate, threads
        self.placed: list[PlacedOrder] = []
        self.faults: list[Fault] = []
        self.received = {sku: 0 for sku in skus}
        self.poison_events: list[OutboxEvent] = []
        self.resent_after_clean_stop: list[int] = []
        self.fault_failed = ""  # the fault that raised, and its traceback: the run is then not the one planned
        self._next = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        # (seconds, orders placed, dispatched and not started, pending, leases run out unstarted, last fault)
        self.timeline: list[tuple] = []
        self._metrics_dir = ""

    # -- the run ---------------------------------------------------------------------------------------

    def run(self, *, metrics_dir: str, drain_timeout: float = 300.0) -> Run:
        self._metrics_dir = metrics_dir
        began = time.monotonic()
        load = [threading.Thread(target=self._client_loop, args=(began,)) for _ in range(self.threads)]
        faults = threading.Thread(target=self._fault_loop, name="faults")
        sampler = threading.Thread(target=self._sample, args=(began,), name="sampler", daemon=True)
        for thread in (*load, faults, sampler):
            thread.start()
        for thread in (*load, faults):
            thread.join()
        if self.fault_failed:
            self._done.set()
            raise AssertionError(f"a fault failed, so the run was not the one planned: {self.fault_failed}")
        load_seconds = time.monotonic() - began
        drained_at = time.monotonic()
        try:
            wait_for(self._settled, timeout=drain_timeout, interval=0.5, what=self._outstanding)
        finally:
            self._done.set()
        return Run(
            broker=self.system.broker_kind,
            placed=sorted(self.placed, key=lambda p: p.plan.number),
            faults=self.faults,
            received=self.received,
            poison_events=self.poison_events,
            drain_seconds=time.monotonic() - drained_at,
            load_seconds=load_seconds,
            metrics_dir=metrics_dir,
            resent_after_clean_stop=self.resent_after_clean_stop,
            shop=self.clients[0],
            timeline=self.timeline,
        )

    def _client_loop(self, began: float) -> None:
        try:
            while (planned := self._take()) is not None:
                time.sleep(max(0.0, began + planned.number / self.rate - time.monotonic()))
                placed = self._place(planned)
                with self._lock:
                    self.placed.append(placed)
        finally:
            connection.close()

    def _take(self) -> PlannedOrder | None:
        with self._lock:
            if self._next >= len(self.plan):
                return None
            self._next += 1
            return self.plan[self._next - 1]

    def _place(self, planned: PlannedOrder) -> PlacedOrder:
        client, placed = self.clients[planned.customer], PlacedOrder(planned)
        reply = client.place_order(planned.lines, ADDRESS, planned.payment_token)
        if reply.status != 201:
            placed.problem = f"placing answered {reply.status}: {reply.data}"
            return placed
        placed.order_id = reply.data["id"]
        confirmed = client.confirm(placed.order_id)
        if confirmed.status != 202:
            placed.problem = f"confirming answered {confirmed.status}: {confirmed.data}"
            return placed
        if planned.token == "cancel":
            cancelled = client.cancel(placed.order_id, "Changed my mind.")
            placed.cancel_status = cancelled.status
            if cancelled.status not in (200, 409):
                placed.problem = f"cancelling answered {cancelled.status}: {cancelled.data}"
        return placed

    def _placed_count(self) -> int:
        with self._lock:
            return self._next

    def _sample(self, began: float) -> None:
        """Once a second, what the outbox holds: the run's timeline, shown when an assertion fails."""
        try:
            while not self._done.is_set():
                waiting = Delivery.objects.filter(status=Delivery.Status.DISPATCHED, started_at__isnull=True).count()
                self.timeline.append(
                    (
                        round(time.monotonic() - began, 1),
                        self._placed_count(),
                        waiting,
                        Delivery.objects.filter(status=Delivery.Status.PENDING).count(),
                        metric(self._metrics_dir, "outbox_redispatches_total", reason="not_started"),
                        self.faults[-1].name if self.faults else "",
                    )
                )
                self._done.wait(1.0)
        finally:
            connection.close()

    # -- the faults ------------------------------------------------------------------------------------

    def _fault_loop(self) -> None:
        name = ""
        try:
            for share, name, fault in self._schedule():
                wait_for(
                    lambda share=share: self._placed_count() >= share * len(self.plan),
                    timeout=600,
                    interval=0.1,
                    what=f"{share:.0%} of the orders to be placed before {name}",
                )
                record = Fault(name, time.monotonic())
                record.note = fault() or ""
                record.ended = time.monotonic()
                self.faults.append(record)
        except Exception:
            self.fault_failed = f"{name or 'the schedule'}\n{traceback.format_exc()}"
        finally:
            connection.close()

    def _schedule(self) -> list[tuple[float, str, Callable[[], str | None]]]:
        return [
            (0.01, "SIGTERM a worker and the relay (graceful stops)", self._graceful_stops),
            (0.12, "a batch of which two deliveries kill their worker", self._poison),
            (0.18, "stock received", self._receive_stock),
            (0.22, "SIGKILL a worker in the middle of a handler", self._kill_a_worker_mid_handler),
            (0.30, "SIGKILL the relay", self._kill_the_relay),
            (0.36, "the broker down for 10 s, back empty", self._broker_outage),
            (0.46, "terminate the workers' and the web's database connections", self._drop_connections),
            (0.50, "stock received", self._receive_stock),
            (0.55, f"every worker stopped for {11 * LEASE_SECONDS:g} s (eleven leases)", self._workers_outage),
            (0.85, "stock received", self._receive_stock),
        ]

    def _graceful_stops(self) -> str:
        """SIGTERM a worker and the relay; what was in flight must finish without waiting out a lease."""
        waiting = Delivery.objects.filter(status=Delivery.Status.DISPATCHED, started_at__isnull=True)
        in_flight = dict(waiting.values_list("id", "redispatches"))
        for role in ("worker-1", "relay"):
            self.system.terminate(role)
            self.system.start_role(role)
        rows = Delivery.objects.filter(id__in=in_flight)
        wait_for(
            lambda: not rows.filter(status__in=Delivery.UNFINISHED).exists(),
            timeout=10 * LEASE_SECONDS,
            what="the deliveries in flight at the clean stops to finish",
        )
        self.resent_after_clean_stop = [i for i, n in rows.values_list("id", "redispatches") if n != in_flight[i]]
        return f"{len(in_flight)} deliveries in flight, {len(self.resent_after_clean_stop)} of them sent again"

    def _poison(self) -> str:
        with transaction.atomic():
            self.poison_events = [publish(Crashed(thing_id=uuid.uuid4(), how=how)) for how in POISON]
        return f"{sum(1 for how in POISON if how)} of {len(POISON)}"

    def _receive_stock(self) -> str:
        for sku in self.skus:
            stock_receive(sku=sku, quantity=500)
            self.received[sku] += 500
        return f"500 units of each of {len(self.skus)} SKUs"

    def _kill_a_worker_mid_handler(self) -> str:
        with transaction.atomic():
            event = publish(Slept(thing_id=uuid.uuid4(), seconds=0.3 * LEASE_SECONDS))  # within the soft limit
        key = f"probe:slow:{event.event_id}"
        pid = int(wait_for(lambda: self.side_channel().lindex(key, 0), timeout=60, what="the slow handler to start"))
        role = next(r for r in self.system.worker_roles if pid in self.system.pool_processes(r))
        self.system.kill(role)
        self.system.start_role(role)
        return f"{role}, whose pool process {pid} was running probe.slow"

    def _kill_the_relay(self) -> None:
        self.system.kill("relay")
        self.system.start_role("relay")

    def _broker_outage(self) -> None:
        self.system.broker.restart_empty(down_for=10)

    def _drop_connections(self) -> str:
        workers, web = terminate_connections("oms-worker"), terminate_connections("oms-web")
        return f"{workers} of the workers', {web} of the web's"

    def _workers_outage(self) -> None:
        self.system.stop_workers(graceful=True)
        time.sleep(11 * LEASE_SECONDS)  # the outage itself: what is measured is what it leaves behind
        self.system.start_workers()

    def _resent_unstarted(self) -> float:
        return metric(self._metrics_dir, "outbox_redispatches_total", reason="not_started")

    # -- settling --------------------------------------------------------------------------------------

    def _settled(self) -> bool:
        """Nothing can move any more: every event relayed, every delivery finished, no mail pending.

        Orders that are not final then are stuck, and the test's assertions say which.
        """
        from notifications.models import Notification

        return (
            not OutboxEvent.objects.filter(relayed_at__isnull=True).exists()
            and not Delivery.objects.filter(status__in=Delivery.UNFINISHED).exists()
            and not Notification.objects.filter(status=Notification.Status.PENDING).exists()
        )

    def _outstanding(self) -> str:
        from notifications.models import Notification

        ids = [p.order_id for p in self.placed if p.order_id]
        unfinished = Delivery.objects.filter(status__in=Delivery.UNFINISHED)
        handlers = sorted(set(unfinished.values_list("handler", flat=True)))
        return (
            f"everything to settle: {Order.objects.filter(id__in=ids).exclude(status__in=Order.FINAL).count()} orders "
            f"not final, {OutboxEvent.objects.filter(relayed_at__isnull=True).count()} events unrelayed, "
            f"{unfinished.count()} deliveries unfinished ({handlers}), "
            f"{Notification.objects.filter(status=Notification.Status.PENDING).count()} mails pending\n"
            f"{self.system.logs()}"
        )


def new_metrics_dir() -> str:
    return tempfile.mkdtemp(prefix="oms-chaos-metrics-")
