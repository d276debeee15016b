"""``POST /api/orders/`` with an ``Idempotency-Key``: a retry gets the order the first request placed, not a second."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from rest_framework.authtoken.models import Token

from orders.models import IdempotencyKey, Order, OrderLine
from outbox.models import OutboxEvent
from tests.factories import make_product
from tests.orders.test_api import new_order, order_url
from tests.support.db_faults import admin_connection
from tests.support.processes import wait_for
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db

ORDERS_URL = "/api/orders/"
KEY = "0c3f6a52-6a0e-4d8e-9a59-3b1c7f2d8e41"


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def pen(db):
    return make_product(price="1.20")


def place(client, body: dict, key: str | None = KEY):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post(ORDERS_URL, body, format="json", **headers)


def written() -> tuple[int, int, int, int]:
    """Orders, order lines, events and keys in the database."""
    return Order.objects.count(), OrderLine.objects.count(), OutboxEvent.objects.count(), IdempotencyKey.objects.count()


def test_the_same_key_and_body_answer_the_same_order_and_write_nothing_new(alice, pen):
    # given an order placed with a key
    client = token_client(alice)
    first = place(client, new_order((pen, 2)))
    assert first.status_code == 201, first.json()
    assert "Idempotent-Replayed" not in first
    before = written()
    # when the same request is sent again
    again = place(client, new_order((pen, 2)))
    # then it is answered with that order, as placed, and nothing is written
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"] == order_url(first.json()["id"])
    assert again.json() == first.json()
    assert written() == before
    assert Order.objects.filter(customer=alice).count() == 1


def test_a_replay_answers_the_order_as_it_is_now(alice, pen):
    # given an order placed with a key, and confirmed since
    client = token_client(alice)
    order_id = place(client, new_order((pen, 1))).json()["id"]
    assert client.post(order_url(order_id, "confirm")).status_code == 202
    # when the placement is retried
    again = place(client, new_order((pen, 1)))
    # then
    assert (again.status_code, again.json()["id"], again.json()["status"]) == (201, order_id, "confirmed")


def test_the_same_request_spelt_differently_is_the_same_request(alice, pen):
    # given
    client = token_client(alice)
    order_id = place(client, new_order((pen, 1))).json()["id"]
    # when the retry writes the country in lower case and pads the token
    body = new_order((pen, 1), payment_token=" tok_visa ")
    body["shipping_address"]["country"] = "gb"
    again = place(client, body)
    # then it is recognised
    assert (again.status_code, again.json()["id"], again["Idempotent-Replayed"]) == (201, order_id, "true")


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["lines"][0].update(quantity=3),
        lambda body: body.update(payment_token="tok_flaky"),
        lambda body: body["shipping_address"].update(city="Paris"),
    ],
    ids=["another quantity", "another token", "another address"],
)
def test_the_same_key_with_another_body_is_422_naming_the_order_and_writes_nothing(alice, pen, change):
    # given
    client = token_client(alice)
    order_id = place(client, new_order((pen, 1))).json()["id"]
    before = written()
    body = new_order((pen, 1))
    change(body)
    # when
    response = place(client, body)
    # then
    assert response.status_code == 422
    assert response.json() == {
        "detail": f"The Idempotency-Key {KEY!r} already placed order {order_id} from a different request: "
        "send exactly that request again to get that order, or use a new key for a new order.",
        "code": "idempotency_key_reused",
    }
    assert written() == before


def test_a_key_is_its_customers_own(alice, bob, pen):
    # given alice placed an order with a key
    alices = place(token_client(alice), new_order((pen, 1))).json()["id"]
    # when bob sends the same key and body
    response = place(token_client(bob), new_order((pen, 1)))
    # then bob gets an order of his own
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert response.json()["id"] != alices
    assert response.json()["customer"] == "bob"
    assert IdempotencyKey.objects.filter(key=KEY).count() == 2


def test_without_a_key_every_request_places_a_new_order(alice, pen):
    client = token_client(alice)
    ids = {place(client, new_order((pen, 1)), key=None).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert not IdempotencyKey.objects.exists()


def test_a_key_of_255_characters_is_accepted(alice, pen):
    response = place(token_client(alice), new_order((pen, 1)), key="k" * 255)
    assert response.status_code == 201
    assert IdempotencyKey.objects.get().key == "k" * 255


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "An Idempotency-Key may not be empty: send a fresh UUID per new order."),
        ("   ", "An Idempotency-Key may not be empty: send a fresh UUID per new order."),
        ("k" * 256, "An Idempotency-Key has at most 255 characters; this one has 256."),
        ("café-1", "An Idempotency-Key is printable ASCII only: a UUID is a good choice."),
        ("a\tb", "An Idempotency-Key is printable ASCII only: a UUID is a good choice."),
    ],
    ids=["empty", "blank", "256 characters", "not ASCII", "a control character"],
)
def test_a_key_that_cannot_be_one_is_400_saying_why_and_writes_nothing(alice, pen, key, message):
    client, before = token_client(alice), written()
    response = place(client, new_order((pen, 1)), key=key)
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Invalid input: Idempotency-Key: {message}",
        "code": "invalid",
        "errors": {"Idempotency-Key": [message]},
    }
    assert written() == before
    assert not Order.objects.exists()


def test_a_request_refused_as_invalid_leaves_its_key_free(alice, pen):
    # given a request with a key, refused by the orders rules (two currencies on one order)
    dollar_pen = make_product(price="1.00", currency="USD")
    client = token_client(alice)
    refused = place(client, new_order((pen, 1), (dollar_pen, 1)))
    assert refused.status_code == 400
    # when the corrected request is sent with the same key
    response = place(client, new_order((pen, 1)))
    # then it places the order
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Order.objects.filter(customer=alice).count() == 1


# concurrency: real threads, each with its own database connection


REQUESTS = 4


def _waiting_to_claim_the_key() -> int:
    """Backends waiting for a lock to insert a key (read outside the lock's transaction: its view of this is frozen)."""
    with admin_connection() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            """AND query LIKE 'INSERT INTO "orders_idempotencykey"%%'"""
        ).fetchone()
    return row[0]


def _place_in_own_thread(token: str, body: dict):
    try:
        return place(token_client(key=token), body)
    finally:
        connections.close_all()  # this thread's connection


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_place_exactly_one_order(alice, pen):
    # given requests that all get as far as claiming the key, held there by a lock on the keys' table
    token = Token.objects.create(user=alice).key
    body = new_order((pen, 2))
    with admin_connection() as locker, ThreadPoolExecutor(REQUESTS) as pool:
        with locker.transaction():
            locker.execute("LOCK TABLE orders_idempotencykey IN SHARE MODE")  # blocks INSERT, not SELECT
            answers = [pool.submit(_place_in_own_thread, token, body) for _ in range(REQUESTS)]
            wait_for(
                lambda: _waiting_to_claim_the_key() == REQUESTS,
                timeout=30,
                what=f"{REQUESTS} requests to wait to claim the key",
            )
        # when the lock goes (the transaction ends), they all claim the key at once
        responses = [answer.result(timeout=60) for answer in answers]
    # then one order is placed, and every request is answered with it
    assert [r.status_code for r in responses] == [201] * REQUESTS, [r.content for r in responses]
    order = Order.objects.get(customer=alice)
    assert {r.json()["id"] for r in responses} == {str(order.id)}
    assert sorted(r.get("Idempotent-Replayed", "") for r in responses) == [""] + ["true"] * (REQUESTS - 1)
    assert IdempotencyKey.objects.get(customer=alice).order_id == order.id
    assert OutboxEvent.objects.filter(type="orders.OrderPlaced", aggregate_id=str(order.id)).count() == 1
    assert OrderLine.objects.filter(order=order).count() == 1
