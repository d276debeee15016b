"""The whole system as processes ships orders placed over REST, on a broker of its own; the faults' tools work.

This is the chaos driver's ground: ``System`` (broker, two workers, beat, the
relay, gunicorn), the REST client, ``restart_empty`` and
``terminate_connections``, each shown doing what the driver will rely on.
"""

import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from orders.models import Order
from tests.factories import ADDRESS, CustomerFactory, make_product
from tests.support.database import backends, terminate_connections
from tests.support.processes import wait_for
from tests.support.rest import ShopClient
from tests.support.system import System
from tests.support.web import RedisServer, start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults, pytest.mark.workers]

PASSWORD = "customer-pass"  # CustomerFactory's


def place_and_confirm(customer: ShopClient, sku: str, quantity: int) -> str:
    placed = customer.place_order([(sku, quantity)], ADDRESS, "tok_visa")
    assert placed.status == 201, placed.data
    confirmed = customer.confirm(placed.data["id"])
    assert confirmed.status == 202, confirmed.data
    return placed.data["id"]


def wait_until_shipped(order_ids: list[str], system: System, timeout: float = 60) -> None:
    def shipped() -> bool:
        return Order.objects.filter(id__in=order_ids, status=Order.Status.SHIPPED).count() == len(order_ids)

    def what() -> str:
        statuses = sorted(Order.objects.filter(id__in=order_ids).values_list("status", flat=True))
        return f"{len(order_ids)} orders to ship, they are {statuses}\n{system.logs()}"

    wait_for(shipped, timeout=timeout, interval=0.2, what=what)


def test_orders_placed_over_rest_ship_and_the_system_carries_on_after_its_broker_restarts_empty(system: System):
    # given a worker that died by itself (killed from outside the System), started again by the supervisor
    lost = system.process("worker-2")
    os.killpg(lost.pid, signal.SIGKILL)
    wait_for(lambda: system.process("worker-2") is not lost, timeout=30, what=system.logs)
    assert system.process("worker-2").alive()
    assert system.crashes() == [lost]
    # and a customer and a product with stock, made through the services, and the customer signed in over REST
    customer = CustomerFactory()
    product = make_product(on_hand=100)
    shop = ShopClient(system.url)
    alice = shop.sign_in(customer.username, PASSWORD)
    # when they place and confirm ten orders, paid with a good card, five at a time (one client, five threads)
    with ThreadPoolExecutor(max_workers=5) as pool:
        order_ids = list(pool.map(lambda n: place_and_confirm(alice, product.sku, 1 + n % 2), range(10)))
    # then every order ships, and the API says so
    wait_until_shipped(order_ids, system)
    assert {alice.get_order(order_id).data["status"] for order_id in order_ids} == {"shipped"}
    # and every exchange was answered without a server error, each with its own request id
    exchanges = shop.log.exchanges()
    assert shop.log.server_errors() == []
    assert shop.log.unanswered() == []
    assert len({e.request_id for e in exchanges}) == len(exchanges) == 1 + 10 * 2 + 10
    # and the processes' database connections carry their role's name, for a fault to terminate them by
    names = {name for _pid, name in backends("oms-")}
    assert {"oms-relay", "oms-web"} <= names <= {"oms-relay", "oms-web", "oms-beat", "oms-worker-1", "oms-worker-2"}
    assert names & {"oms-worker-1", "oms-worker-2"}, names
    # when the broker goes away for two seconds and comes back empty
    system.broker.restart_empty(down_for=2)
    # then it answers, and an order placed now still ships
    assert system.broker.answers(), system.broker.logs()
    wait_until_shipped([place_and_confirm(alice, product.sku, 1)], system)


def test_terminating_the_webs_connections_drops_exactly_those_and_the_web_answers_again():
    # given a web server keeping its database connections, as in production, that has served requests
    broker = RedisServer().start()
    web = start_web(broker_url=broker.url, application_name="oms-web", CONN_MAX_AGE="60")
    try:
        customer = CustomerFactory()
        shop = ShopClient(web.url, retry_for=10)
        alice = shop.sign_in(customer.username, PASSWORD)
        for _ in range(8):
            assert alice.request("GET", "/api/orders/").status == 200
        before = {pid for pid, _name in backends("oms-web")}
        assert before, "the web server holds no database connection to terminate"
        # when its connections are terminated
        terminated = terminate_connections("oms-web")
        # then exactly those went, and the test's own connection still works
        assert terminated == len(before)
        assert not before & {pid for pid, _name in backends("oms-web")}
        assert backends("oms-test-nobody") == []
        # and the web answers again on new connections (the client retrying what it retries)
        wait_for(
            lambda: alice.request("GET", "/api/orders/").status == 200,
            timeout=30,
            what=lambda: f"the web to answer again; statuses {shop.log.statuses()}\n{web.logs()}",
        )
        assert {pid for pid, _name in backends("oms-web")} - before
    finally:
        web.stop()
        broker.stop()
