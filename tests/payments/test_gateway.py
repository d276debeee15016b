"""The sandbox gateway behaves like a real provider, keyed by idempotency key."""

import uuid
from decimal import Decimal

import pytest

from outbox.events import Money
from payments.gateway import GatewayRefused, GatewayUnavailable, SandboxGateway
from payments.models import SandboxCharge

pytestmark = pytest.mark.django_db

TEN_EUROS = Money(amount=Decimal("10.00"), currency="EUR")


@pytest.fixture
def gateway():
    return SandboxGateway()


def key() -> str:
    return str(uuid.uuid4())


def test_a_visa_token_is_authorised_and_charged_once_however_often_it_is_asked(gateway):
    # given
    k = key()
    # when
    first = gateway.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    again = gateway.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    # then
    assert first.approved
    assert again == first
    assert SandboxCharge.objects.filter(idempotency_key=k).count() == 1


@pytest.mark.parametrize("token", ["tok_decline", "tok_decline_insufficient_funds", "tok_nonsense"])
def test_decline_tokens_and_unknown_tokens_are_declined(gateway, token):
    answer = gateway.authorise(token=token, amount=TEN_EUROS, idempotency_key=key())
    assert not answer.approved
    assert answer.decline_reason


def test_a_flaky_token_fails_twice_for_a_key_then_authorises(gateway):
    # given
    k = key()
    # when / then
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            gateway.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k)
    assert gateway.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k).approved
    assert SandboxGateway.calls(k) == 3
    # and a new key starts flaky again
    with pytest.raises(GatewayUnavailable):
        gateway.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=key())


def test_a_refund_returns_an_authorised_charge_once(gateway):
    # given
    charge = gateway.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=key())
    # when
    first = gateway.refund(reference=charge.reference, amount=TEN_EUROS, idempotency_key="r1")
    again = gateway.refund(reference=charge.reference, amount=TEN_EUROS, idempotency_key="r1")
    # then
    assert first == again
    assert SandboxCharge.objects.get(reference=charge.reference).status == "refunded"


def test_refunding_a_declined_charge_is_refused(gateway):
    declined = gateway.authorise(token="tok_decline", amount=TEN_EUROS, idempotency_key=key())
    with pytest.raises(GatewayRefused):
        gateway.refund(reference=declined.reference, amount=TEN_EUROS, idempotency_key="r2")
