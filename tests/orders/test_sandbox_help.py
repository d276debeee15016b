"""The sandbox's free card tokens are explained on the order form and in the API schema only while payments go to it."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import make_product
from tests.support.html import element, elements, field_block, text
from tests.support.users import make_user

pytestmark = pytest.mark.django_db

LIVE_GATEWAY = "tests.support.live_providers.LiveGateway"


@pytest.fixture
def order_form_page(db):
    make_product(price="1.20", on_hand=100)
    client = Client()
    client.force_login(make_user("alice"))
    return lambda: client.get("/orders/new/")


def _payment_token_description() -> str:
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    return schema["components"]["schemas"]["NewOrderRequest"]["properties"]["payment_token"]["description"]


def test_with_the_sandbox_gateway_the_form_offers_and_explains_its_tokens(order_form_page):
    response = order_form_page()
    assert dict(element(response, "input", name="payment_token").attributes)["value"] == "tok_visa"
    assert "A sandbox card token" in text(field_block(response, "payment_token"))
    assert "tok_visa is authorised" in text(element(response, "ul", id="sandbox-tokens"))


def test_with_a_real_gateway_the_form_names_no_test_token(settings, order_form_page):
    # given payments that go to a real provider
    settings.PAYMENTS_GATEWAY = LIVE_GATEWAY
    # when
    response = order_form_page()
    # then the field asks for the provider's token, and no sandbox token is offered or listed
    assert response.status_code == 200
    assert "value" not in dict(element(response, "input", name="payment_token").attributes)
    assert "payment provider's checkout" in text(field_block(response, "payment_token"))
    assert elements(response, "ul", id="sandbox-tokens") == []
    assert b"tok_" not in response.content
    assert b"sandbox" not in response.content.lower()


def test_with_the_sandbox_gateway_the_schema_documents_its_tokens():
    description = _payment_token_description()
    assert description.startswith("The card token your payment provider's client-side checkout returned.")
    assert "`tok_visa` is authorised" in description


def test_with_a_real_gateway_the_schema_names_no_test_token(settings):
    settings.PAYMENTS_GATEWAY = LIVE_GATEWAY
    assert _payment_token_description() == "The card token your payment provider's client-side checkout returned."
