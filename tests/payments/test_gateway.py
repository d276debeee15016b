"""The sandbox gateway behaves like a real provider, keyed by idempotency key, in a store of its own."""

import uuid
from decimal import Decimal

import psycopg
import pytest
from django.db import connections, transaction

from outbox.events import Money
from payments import sandbox
from payments.gateway import GatewayRefused, GatewayUnavailable, gateway
from payments.models import SandboxCharge
from payments.sandbox import SandboxGateway
from shipping.sandbox import SandboxCarrier
from tests.support.database import terminate_connection_of
from tests.support.web import free_port

pytestmark = pytest.mark.django_db(databases=["default", "sandbox"])

TEN_EUROS = Money(amount=Decimal("10.00"), currency="EUR")


class WorkerDied(Exception):
    """Stands for whatever ends a handler's transaction after the provider answered."""


@pytest.fixture
def provider():
    return SandboxGateway()


def key() -> str:
    return str(uuid.uuid4())


def rows_seen_by_a_stranger(idempotency_key: str) -> list[tuple[str, str]]:
    """The provider's row for a key as another client of its database sees it: only what is committed."""
    db = connections["sandbox"].settings_dict
    with psycopg.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"]) as stranger:
        query = "SELECT reference, status FROM payments_sandboxcharge WHERE idempotency_key = %s"
        return stranger.execute(query, [idempotency_key]).fetchall()


def test_the_default_gateway_is_the_sandbox_and_its_ledger_lives_in_the_provider_store():
    assert isinstance(gateway(), SandboxGateway)
    assert SandboxCharge.objects.db == "sandbox"


def test_a_visa_token_is_authorised_and_charged_once_however_often_it_is_asked(provider):
    # given
    k = key()
    # when
    first = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    again = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    # then
    assert first.approved
    assert again == first
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"authorised": 1}
    assert sandbox.calls(idempotency_key=k) == 2


@pytest.mark.parametrize("token", ["tok_decline", "tok_decline_insufficient_funds", "tok_nonsense"])
def test_decline_tokens_and_unknown_tokens_are_declined(provider, token):
    k = key()
    answer = provider.authorise(token=token, amount=TEN_EUROS, idempotency_key=k)
    assert not answer.approved
    assert answer.decline_reason
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"declined": 1}


def test_a_flaky_token_fails_twice_for_a_key_then_authorises(provider):
    # given
    k = key()
    # when / then
    for _ in range(2):
        with pytest.raises(GatewayUnavailable):
            provider.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k)
    assert provider.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k).approved
    assert sandbox.calls(idempotency_key=k) == 3
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"authorised": 1}
    # and a new key starts flaky again
    with pytest.raises(GatewayUnavailable):
        provider.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=key())


def test_flaky_calls_are_counted_by_the_provider_across_our_rollbacks(provider):
    # given two attempts whose transactions rolled back after the gateway timed out
    k = key()
    for _ in range(2):
        with pytest.raises(GatewayUnavailable), transaction.atomic():
            provider.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k)
    # when the third attempt calls
    answer = provider.authorise(token="tok_flaky", amount=TEN_EUROS, idempotency_key=k)
    # then the provider remembered the first two: it authorises
    assert answer.approved
    assert sandbox.calls(idempotency_key=k) == 3


def test_an_unavailable_token_always_fails_and_never_charges(provider):
    k = key()
    for _ in range(6):
        with pytest.raises(GatewayUnavailable, match="timed out"):
            provider.authorise(token="tok_unavailable", amount=TEN_EUROS, idempotency_key=k)
    assert sandbox.calls(idempotency_key=k) == 6
    assert sandbox.charge_counts(idempotency_keys=[k]) == {}


@pytest.mark.django_db(transaction=True, databases=["default", "sandbox"])
def test_the_providers_charge_survives_our_rollback(provider):
    # given
    k = key()
    # when our transaction rolls back after the provider charged
    with pytest.raises(WorkerDied), transaction.atomic():
        charged = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
        raise WorkerDied
    # then the charge is committed at the provider: another client of its database sees it
    assert rows_seen_by_a_stranger(k) == [(charged.reference, "authorised")]
    # and a retry with the same key gets that charge, not a second one
    assert provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k) == charged
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"authorised": 1}


def test_a_refund_returns_an_authorised_charge_once(provider):
    # given
    k = key()
    charge = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    # when
    first = provider.refund(reference=charge.reference, amount=TEN_EUROS, idempotency_key="r1")
    again = provider.refund(reference=charge.reference, amount=TEN_EUROS, idempotency_key="r1")
    # then
    assert first == again
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"refunded": 1}


def test_refunding_a_declined_charge_is_refused(provider):
    declined = provider.authorise(token="tok_decline", amount=TEN_EUROS, idempotency_key=key())
    with pytest.raises(GatewayRefused):
        provider.refund(reference=declined.reference, amount=TEN_EUROS, idempotency_key="r2")


def test_a_void_releases_the_authorisation_under_a_key_once(provider):
    # given
    k = key()
    charge = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    # when
    first = provider.void(idempotency_key=k)
    again = provider.void(idempotency_key=k)
    # then
    assert first == again
    assert (first.charge_reference, first.reference[:3]) == (charge.reference, "vo_")
    assert sandbox.charge_counts(idempotency_keys=[k]) == {"voided": 1}
    # and the voided charge can be neither refunded nor authorised again under its key
    with pytest.raises(GatewayRefused):
        provider.refund(reference=charge.reference, amount=TEN_EUROS, idempotency_key="r3")
    retried = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    assert (retried.approved, retried.decline_reason) == (False, "authorisation voided")


def test_a_void_where_nothing_is_held_releases_nothing(provider):
    # given a key never charged, and one declined
    never, declined = key(), key()
    provider.authorise(token="tok_decline", amount=TEN_EUROS, idempotency_key=declined)
    # when / then
    assert provider.void(idempotency_key=never) is None
    assert provider.void(idempotency_key=declined) is None
    assert sandbox.charge_counts(idempotency_keys=[never, declined]) == {"declined": 1}


@pytest.mark.django_db(transaction=True, databases=["default", "sandbox"])
def test_a_call_on_a_connection_the_database_dropped_goes_through_on_a_new_one(provider):
    # given a charge, then the provider store's connection terminated while idle (a failover, an operator)
    k = key()
    charged = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    terminate_connection_of("sandbox")
    # when the handler's retry asks again under the same key
    again = provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    # then the call went through on a new connection, as an HTTP client resends on a closed keep-alive
    # connection, and found the first charge: nothing charged twice
    assert (again.approved, again.reference) == (True, charged.reference)
    assert sandbox.calls(idempotency_key=k) == 2
    assert rows_seen_by_a_stranger(k) == [(charged.reference, "authorised")]
    # and so does the carrier, on the same store
    terminate_connection_of("sandbox")
    assert SandboxCarrier().cancel(idempotency_key=key()) is None


@pytest.mark.django_db(transaction=True, databases=["default", "sandbox"])
def test_a_provider_store_that_stays_unreachable_is_the_gateway_unavailable(provider):
    # given the provider store's connection dropped, and its server gone from its address
    k = key()
    terminate_connection_of("sandbox")
    store = connections["sandbox"]
    store.settings_dict = {**store.settings_dict, "PORT": free_port()}
    try:
        # when a handler calls the gateway / then it gets the provider's transient error, to be retried
        with pytest.raises(GatewayUnavailable, match="could not be reached"):
            provider.authorise(token="tok_visa", amount=TEN_EUROS, idempotency_key=k)
    finally:
        store.close()
        store.settings_dict = {**store.settings_dict, "PORT": connections["default"].settings_dict["PORT"]}
    assert sandbox.calls(idempotency_key=k) == 0
