"""The cache down (a redis-server of the test's own, stopped): orders are still placed, and signing in, which counts
its failures there, is a 503 to retry, never a 500."""

import logging

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from orders.models import Order
from tests.factories import ADDRESS, make_product
from tests.support.users import PASSWORD, make_user, token_client
from tests.support.web import RedisServer

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache_down(settings):
    """The default cache on a redis-server that has just stopped."""
    server = RedisServer().start()
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": server.cache_url}
    }
    caches["default"].close()
    del caches["default"]
    server.shutdown()
    yield server
    caches["default"].close()
    del caches["default"]
    server.stop()


def test_an_order_is_placed_without_its_limit_while_the_cache_is_down(cache_down, caplog):
    customer = make_user("carol")
    client = token_client(customer)  # its token was made before: reading it needs no cache
    body = {
        "lines": [{"sku": make_product().sku, "quantity": 1}],
        "shipping_address": ADDRESS,
        "payment_token": "tok_visa",
    }
    # when
    with caplog.at_level(logging.WARNING, logger="config.api.throttling"):
        response = client.post("/api/orders/", body, format="json")
    # then
    assert response.status_code == 201, response.content
    assert Order.objects.filter(customer=customer).count() == 1
    assert "order limit not applied: the cache is unavailable" in caplog.text


def test_the_order_form_places_an_order_too(cache_down, client):
    customer = make_user("dave")
    client.force_login(customer)
    form = {
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-0-sku": make_product().sku,
        "lines-0-quantity": "1",
        **ADDRESS,
        "payment_token": "tok_visa",
    }
    response = client.post("/orders/new/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Order.objects.filter(customer=customer).count() == 1


def test_signing_in_is_a_503_to_retry_not_a_500(cache_down, caplog):
    make_user("erin")
    with caplog.at_level(logging.WARNING, logger="config.middleware"):
        response = APIClient().post("/api/auth/token/", {"username": "erin", "password": PASSWORD}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert response["Retry-After"]
    assert "cache unavailable during POST /api/auth/token/" in caplog.text
