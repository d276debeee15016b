"""The chaos suite: 2,000 orders through the real system while it is hit by every fault we know.

Three runs on Redis and one on RabbitMQ (``-k redis`` / ``-k rabbitmq`` to pick).
Each prints one summary line. ``CHAOS_ORDERS`` changes the number of orders of
a run (2,000 by default). What each fault does and how the system recovers:
docs/operations.md.
"""

import os
from collections import Counter

import pytest
import redis as redis_lib
from django.conf import settings
from django.db.models import Avg, Count, F

from inventory.selectors import stock_level
from notifications.models import Notification
from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from payments import sandbox as payment_provider
from payments.services import authorisation_key
from shipping import sandbox as carrier
from shipping.services import booking_key
from tests.factories import CustomerFactory, make_product
from tests.faults.chaos import POISON, Chaos, Run, new_metrics_dir, plan_orders, system_settings
from tests.outbox.probe.models import Effect
from tests.support.mail import MailSink
from tests.support.rest import ShopClient
from tests.support.system import System

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "sandbox"]),
    pytest.mark.faults,
    pytest.mark.workers,
    pytest.mark.timeout(900),
]

ORDERS = int(os.environ.get("CHAOS_ORDERS", "2000"))
CUSTOMERS = 10
INITIAL_STOCK = 100_000
PASSWORD = "customer-pass"  # CustomerFactory's


@pytest.fixture
def side_channel_url() -> str:
    """Where probe handlers note what no rollback may undo: the session's Redis, not the run's broker."""
    return settings.CACHES["default"]["LOCATION"]


@pytest.mark.parametrize(
    ("broker", "run_number"), [("redis", 1), ("redis", 2), ("redis", 3), ("rabbitmq", 1)], ids=lambda v: str(v)
)
@pytest.mark.usefixtures("relay_fans_out")  # this process's broker is not the system's: its events go by the relay
def test_no_fault_loses_or_doubles_anything(broker, run_number, no_live_outbox, side_channel_url, capsys):
    # given the whole system on a broker of its own, mail going to a real SMTP server, customers and stock
    prices = ("3.50", "7.20", "12.00", "19.99", "49.90", "64.00", "120.00", "249.00")
    skus = [make_product(on_hand=INITIAL_STOCK, price=price).sku for price in prices]
    customers = [CustomerFactory() for _ in range(CUSTOMERS)]
    metrics_dir = new_metrics_dir()
    with (
        MailSink() as sink,
        System(
            broker=broker,
            concurrency=int(os.environ.get("CHAOS_CONCURRENCY", "1")),
            relay_poll_seconds=1.0,
            **system_settings(sink.env(), metrics_dir, side_channel_url),
        ) as system,
    ):
        shop = ShopClient(system.url, retry_for=120)
        clients = [shop.sign_in(c.username, PASSWORD) for c in customers]
        plan = plan_orders(ORDERS, customers=CUSTOMERS, skus=skus, seed=run_number)
        chaos = Chaos(system, clients, plan, skus=skus, side_channel=lambda: redis_lib.Redis.from_url(side_channel_url))
        # when the orders stream in and the faults hit
        run = chaos.run(metrics_dir=metrics_dir)
        crashed = system.crashes()
        logs = system.logs(tail=1500)
    # then
    with capsys.disabled():
        print(f"\n{summary(run, sink)}")
        if os.environ.get("CHAOS_TIMINGS"):
            print(handler_timings())
    assert [p.problem for p in run.placed if p.problem] == [], logs
    assert crashed == [], f"processes died by themselves: {crashed}\n{logs}"
    orders = {str(o.id): o for o in Order.objects.filter(id__in=[p.order_id for p in run.placed])}
    assert len(orders) == ORDERS
    assert_no_dead_letter_but_the_poisons(run)  # first: a dead letter names the cause of what follows
    assert_every_order_ended_where_its_card_says(run, orders)
    assert_the_providers_did_each_thing_once(run, orders)
    assert_stock_adds_up(run, orders, skus)
    assert_one_mail_per_order_and_kind(run, orders, sink)
    assert_attempts_are_honest()
    assert_no_5xx_for_a_request_that_committed(run)
    assert run.resent_after_clean_stop == [], "a clean stop left deliveries to wait out their lease"


def expected_outcome(placed) -> tuple[str, str]:
    """(status, cancel code) the order must end in, from its token and its customer's cancellation alone."""
    token = placed.plan.token
    if token.startswith("tok_decline") or token == "tok_unavailable":
        return Order.Status.CANCELLED, Order.CancelCode.PAYMENT_FAILED
    if token == "cancel" and placed.cancel_status == 200:
        return Order.Status.CANCELLED, Order.CancelCode.CUSTOMER
    return Order.Status.SHIPPED, ""


def assert_every_order_ended_where_its_card_says(run: Run, orders: dict[str, Order]) -> None:
    wrong = [
        (p.plan.token, p.cancel_status, orders[p.order_id].status, orders[p.order_id].cancel_code)
        for p in run.placed
        if (orders[p.order_id].status, orders[p.order_id].cancel_code) != expected_outcome(p)
    ]
    assert wrong == [], f"{len(wrong)} orders ended elsewhere than their token says: {wrong[:20]}"


def assert_the_providers_did_each_thing_once(run: Run, orders: dict[str, Order]) -> None:
    """Counted at the sandbox providers, in their own store: one charge per paid order, one refund per cancelled one."""
    charges = {c.idempotency_key: c for c in payment_provider.charges()}
    bookings = {b.idempotency_key: b for b in carrier.bookings()}
    problems = []
    for placed in run.placed:
        order = orders[placed.order_id]
        charge = charges.get(authorisation_key(order.id))
        booking = bookings.get(booking_key(order.id))
        token = placed.plan.payment_token
        if order.status == Order.Status.SHIPPED:
            ok = charge is not None and charge.status == "authorised" and booking and booking.status == "booked"
        elif token.startswith("tok_decline"):
            ok = charge is not None and charge.status == "declined" and booking is None
        elif token == "tok_unavailable":
            ok = charge is None and booking is None
        else:  # cancelled by its customer: whatever was taken is given back, whatever was booked is called off
            ok = (charge is None or charge.status in ("refunded", "voided")) and (
                booking is None or booking.status == "cancelled"
            )
        if not ok:
            problems.append((token, order.status, charge and charge.status, booking and booking.status))
    assert problems == [], f"{len(problems)} orders with the wrong charge or booking: {problems[:20]}"
    refunded = [c for c in charges.values() if c.status == "refunded"]
    assert all(c.refund_key for c in refunded)
    assert len(charges) == len({c.reference for c in charges.values()})
    flaky = [p for p in run.placed if p.plan.payment_token == "tok_flaky"]
    assert all(payment_provider.calls(idempotency_key=authorisation_key(p.order_id)) >= 3 for p in flaky)


def assert_stock_adds_up(run: Run, orders: dict[str, Order], skus: list[str]) -> None:
    shipped = Counter()
    for placed in run.placed:
        if orders[placed.order_id].status == Order.Status.SHIPPED:
            for sku, quantity in placed.plan.lines:
                shipped[sku] += quantity
    for sku in skus:
        level = stock_level(sku=sku)
        assert (level.on_hand, level.reserved) == (INITIAL_STOCK + run.received[sku] - shipped[sku], 0), sku


def assert_one_mail_per_order_and_kind(run: Run, orders: dict[str, Order], sink: MailSink) -> None:
    expected = set()
    for order_id, order in orders.items():
        shipped = order.status == Order.Status.SHIPPED
        expected.add((order_id, Notification.Kind.ORDER_CONFIRMED))
        expected.add((order_id, Notification.Kind.ORDER_SHIPPED if shipped else Notification.Kind.ORDER_CANCELLED))
    distinct = Counter((m.order_id, m.kind) for m in {m.message_id: m for m in sink.received}.values())
    assert set(distinct) == expected
    assert set(distinct.values()) == {1}, [key for key, n in distinct.items() if n > 1][:20]
    assert not Notification.objects.exclude(status=Notification.Status.SENT).exists()


def assert_no_dead_letter_but_the_poisons(run: Run) -> None:
    dead = Delivery.objects.filter(status=Delivery.Status.DEAD, resolved_at__isnull=True)
    poison = {e.id for e, how in zip(run.poison_events, POISON, strict=True) if how}
    assert {d.event_id for d in dead} == poison, [(d.handler, d.last_error) for d in dead.exclude(event_id__in=poison)]
    assert all("The worker was lost during attempt 3 of 3" in d.last_error for d in dead)
    siblings = [e for e, how in zip(run.poison_events, POISON, strict=True) if not how]
    assert Effect.objects.filter(handler="crash", event_id__in=[e.event_id for e in siblings]).count() == len(siblings)


def assert_attempts_are_honest() -> None:
    """A delivery whose handler never failed ran once; every further attempt has a failure on record."""
    unexplained = Delivery.objects.filter(status=Delivery.Status.DONE, last_error="").exclude(attempts=1)
    assert not unexplained.exists(), list(unexplained.values_list("handler", "attempts", "crashes")[:20])
    assert not Delivery.objects.filter(status=Delivery.Status.DONE, attempts=0).exists()


def assert_no_5xx_for_a_request_that_committed(run: Run) -> None:
    server_errors = run.shop.log.server_errors()
    assert all(e.request_id for e in server_errors), [(e.method, e.path, e.status) for e in server_errors]
    committed = OutboxEvent.objects.filter(causation_id__in=[e.request_id for e in server_errors])
    assert not committed.exists(), [(e.method, e.path, e.status) for e in server_errors]


def handler_timings() -> str:
    """Per handler: deliveries done, mean time running (start to done) and mean wait (sent to started)."""
    rows = (
        Delivery.objects.filter(status=Delivery.Status.DONE)
        .values("handler")
        .annotate(
            n=Count("id"), run=Avg(F("finished_at") - F("started_at")), wait=Avg(F("started_at") - F("dispatched_at"))
        )
        .order_by("handler")
    )
    return "\n".join(f"  {r['handler']:<40} {r['n']:>6}  run {r['run']}  wait {r['wait']}" for r in rows)


def summary(run: Run, sink: MailSink) -> str:
    resent = run.metric("outbox_redispatches_total", reason="not_started")
    lost = Delivery.objects.filter(crashes__gt=0).count()
    attempts_lost = sum(Delivery.objects.filter(crashes__gt=0).values_list("crashes", flat=True))
    dropped = run.metric("outbox_duplicates_dropped_total", by="message")
    inbox = run.metric("outbox_duplicates_dropped_total", by="inbox")
    mails = len(sink.received)
    mail_resends = mails - len({m.message_id for m in sink.received})
    statuses = Counter(e.status for e in run.shop.log.exchanges())
    retried = sum(1 for e in run.shop.log.exchanges() if e.attempt > 1)
    outcomes = Counter(o.status for o in Order.objects.filter(id__in=[p.order_id for p in run.placed]))
    return (
        f"chaos[{run.broker}]: {len(run.placed)} orders ({outcomes['shipped']} shipped, "
        f"{outcomes['cancelled']} cancelled) in {run.load_seconds:.0f} s, {len(run.faults)} faults, "
        f"{int(resent) + attempts_lost} redeliveries ({int(resent)} leases ran out unstarted, {attempts_lost} attempts "
        f"lost with their worker by {lost} deliveries), {int(dropped + inbox)} duplicates dropped before a handler ran "
        f"({int(inbox)} by the inbox), {mails} mails ({mail_resends} re-sent under their Message-ID), "
        f"{retried} client retries ({statuses.get(503, 0)} answered 503, {statuses.get(None, 0)} unanswered), "
        f"drained in {run.drain_seconds:.1f} s"
    )
