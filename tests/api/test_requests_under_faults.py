"""The API under database faults, with the request's own PostgreSQL connection really dropped.

A request whose work committed is answered as done, whatever happens to the
connection after the commit. A request whose connection drops before that is
a 503 with ``Retry-After``, and retrying it is safe.
"""

import pytest

from config.api.errors import RETRY_AFTER_SECONDS, UNAVAILABLE_DETAIL
from orders.models import IdempotencyKey, Order
from outbox.models import OutboxEvent
from tests.factories import make_product, place_order
from tests.orders.test_api import iso, new_order, order_url
from tests.support.db_faults import connection_dropped_at, connection_dropped_once_committed
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS_URL = "/api/orders/"


@pytest.fixture
def alice(db):
    return make_user("alice")


def confirmations(order: Order) -> int:
    return OutboxEvent.objects.filter(correlation_id=order.correlation_id, type="orders.OrderConfirmed").count()


# committed, then the connection drops: the answer is still the committed state


def test_a_confirmation_that_committed_is_answered_202_though_the_connection_drops_right_after(alice):
    # given a draft, and the request's connection set to drop the moment its transaction commits
    order = place_order(customer=alice)
    client = token_client(alice)
    # when
    with connection_dropped_once_committed() as fault:
        response = client.post(order_url(order.id, "confirm"))
    # then the connection did drop after the commit, and the client is told what was committed
    assert fault.dropped, "the connection was never dropped"
    assert response.status_code == 202, response.content
    order.refresh_from_db()
    assert order.status == "confirmed"
    body = response.json()
    assert (body["id"], body["status"], body["confirmed_at"]) == (str(order.id), "confirmed", iso(order.confirmed_at))
    assert (body["payment_status"], body["inventory_status"]) == ("pending", "pending")
    assert confirmations(order) == 1


def test_a_cancellation_that_committed_is_answered_200_though_the_connection_drops_right_after(alice):
    order = place_order(customer=alice, confirm=True)
    client = token_client(alice)
    with connection_dropped_once_committed() as fault:
        response = client.post(order_url(order.id, "cancel"), {"reason": "Changed my mind."}, format="json")
    assert fault.dropped
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["cancel_reason"]) == ("cancelled", "Changed my mind.")
    order.refresh_from_db()
    assert order.status == "cancelled"


@pytest.mark.parametrize("key", [None, "placed-under-fault"], ids=["without a key", "with an idempotency key"])
def test_an_order_placed_is_answered_201_though_the_connection_drops_right_after(alice, key):
    # given
    pen = make_product(price="1.20")
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    client = token_client(alice)
    # when
    with connection_dropped_once_committed() as fault:
        response = client.post(ORDERS_URL, new_order((pen, 2)), format="json", **headers)
    # then
    assert fault.dropped
    assert response.status_code == 201, response.content
    order = Order.objects.get(customer=alice)
    assert (response.json()["id"], response.json()["status"]) == (str(order.id), "draft")
    assert response["Location"] == order_url(order.id)
    assert IdempotencyKey.objects.filter(order=order).exists() == (key is not None)


# the connection drops before the commit: 503, Retry-After, and the retry does it once


def test_a_read_whose_connection_drops_mid_request_is_503_with_retry_after_and_the_retry_is_answered(alice):
    # given
    order = place_order(customer=alice)
    client = token_client(alice)
    # when the connection drops as the view reads the order
    with connection_dropped_at('SELECT "orders_order"') as fault:
        response = client.get(order_url(order.id))
    # then
    assert fault.dropped
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json() == {"detail": UNAVAILABLE_DETAIL, "code": "service_unavailable"}
    # and the next request, on a new connection, is answered
    assert client.get(order_url(order.id)).json()["id"] == str(order.id)


def test_a_confirmation_whose_connection_drops_before_it_commits_is_503_and_the_retry_confirms_once(alice):
    # given
    order = place_order(customer=alice)
    client = token_client(alice)
    # when the connection drops as the confirmation writes the order
    with connection_dropped_at('UPDATE "orders_order"') as fault:
        response = client.post(order_url(order.id, "confirm"))
    # then nothing was done
    assert fault.dropped
    assert response.status_code == 503
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response.json()["code"] == "service_unavailable"
    order.refresh_from_db()
    assert order.status == "draft"
    # when the client retries, and retries again
    retried = client.post(order_url(order.id, "confirm"))
    again = client.post(order_url(order.id, "confirm"))
    # then it is confirmed once
    assert (retried.status_code, again.status_code) == (202, 202)
    assert retried.json()["status"] == again.json()["status"] == "confirmed"
    assert confirmations(order) == 1


def test_placing_with_a_key_whose_connection_drops_before_the_commit_is_503_and_the_retry_places_one_order(alice):
    # given
    pen = make_product(price="1.20")
    client = token_client(alice)
    body = new_order((pen, 1))
    # when the connection drops as the order is written
    with connection_dropped_at('INSERT INTO "orders_order"') as fault:
        response = client.post(ORDERS_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    # then
    assert fault.dropped
    assert response.status_code == 503
    assert not Order.objects.filter(customer=alice).exists()
    assert not IdempotencyKey.objects.exists()  # the key was claimed in the transaction that never committed
    # when the client retries with the same key, twice
    first = client.post(ORDERS_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    second = client.post(ORDERS_URL, body, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    # then one order
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"] == str(Order.objects.get(customer=alice).id)
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"


def test_the_token_lookup_losing_its_connection_is_503_too(alice):
    # given: authentication is the request's first query
    client = token_client(alice)
    # when
    with connection_dropped_at('SELECT "authtoken_token"') as fault:
        response = client.get(ORDERS_URL)
    # then
    assert fault.dropped
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
