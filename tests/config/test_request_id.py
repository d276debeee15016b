"""A client's ``X-Request-ID`` is logged beside ours, and never becomes the correlation id of what it caused."""

import logging
import uuid

import pytest

from outbox.models import OutboxEvent
from tests.factories import ADDRESS, make_product
from tests.support.users import make_user, token_client

pytestmark = pytest.mark.django_db


def _place_order(client, **headers):
    body = {"lines": [{"sku": make_product().sku, "quantity": 1}], "shipping_address": ADDRESS, "payment_token": "tok"}
    return client.post("/api/orders/", body, format="json", **headers)


def test_a_clients_request_id_is_not_the_correlation_id_of_the_events_it_caused(caplog):
    # given a client that names its request with another request's id (say, one it saw in a log)
    theirs = uuid.uuid4()
    client = token_client(make_user("carol"))
    # when it places an order with it
    with caplog.at_level(logging.INFO, logger="outbox.middleware"):
        response = _place_order(client, HTTP_X_REQUEST_ID=str(theirs))
    # then the order's event was caused by a request id of ours, which the answer names
    assert response.status_code == 201, response.json()
    ours = uuid.UUID(response["X-Request-ID"])
    assert ours != theirs
    event = OutboxEvent.objects.get(type="orders.OrderPlaced")
    assert event.causation_id == ours
    assert not OutboxEvent.objects.filter(correlation_id=theirs).exists()
    assert not OutboxEvent.objects.filter(causation_id=theirs).exists()
    # and the log pairs the client's id with ours
    [record] = [r for r in caplog.records if getattr(r, "client_request_id", None)]
    assert (record.client_request_id, record.request_id) == (str(theirs), str(ours))


def test_a_clients_request_id_is_logged_printable_and_capped(caplog):
    # given a header that tries to forge a log line, and is very long
    header = "abc\r\nFAKE LOG LINE\x00\x1b[31m" + "x" * 5000
    # when
    with caplog.at_level(logging.INFO, logger="outbox.middleware"):
        response = token_client(make_user("carol")).get("/api/orders/", HTTP_X_REQUEST_ID=header)
    # then the answer is ours, and the log holds the client's id without control characters, at most 200 long
    assert response.status_code == 200
    uuid.UUID(response["X-Request-ID"])
    [record] = [r for r in caplog.records if getattr(r, "client_request_id", None)]
    assert record.client_request_id.startswith("abcFAKE LOG LINE[31mxxx")
    assert len(record.client_request_id) == 200
    assert not any(c in record.getMessage() for c in "\r\n\x00\x1b")


def test_without_a_client_id_each_request_gets_a_fresh_one():
    client = token_client(make_user("carol"))
    ids = {client.get("/api/orders/")["X-Request-ID"] for _ in range(3)}
    assert len(ids) == 3
