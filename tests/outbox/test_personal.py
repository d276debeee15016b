"""Personal data in the log is sealed under its subject's key, and reads as erased once the key is destroyed."""

import datetime as dt
import json
import uuid

import pytest
from django.db import connection, transaction

from orders.events import ERASED_ADDRESS, OrderPlaced, OrderShipped, ShippingAddress
from outbox import personal
from outbox.events import EventDecodeError, Money, registry
from outbox.models import OutboxEvent, SubjectKey
from outbox.publishing import publish

pytestmark = pytest.mark.django_db

ADDRESS = ShippingAddress(name="Grace Hopper", line1="1 Navy Yard", city="Arlington", postal_code="22202", country="US")
EMAIL = "grace.hopper@customers.example"


def shipped(order_id: uuid.UUID) -> OrderShipped:
    return OrderShipped(
        order_id=order_id,
        carrier="C",
        tracking_number="T1",
        estimated_delivery=dt.date(2026, 12, 9),
        customer_email=EMAIL,
    )


def placed(order_id: uuid.UUID) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id, customer_id=7, lines=(), total=Money(amount=1, currency="EUR"), shipping_address=ADDRESS
    )


def stored(row: OutboxEvent) -> str:
    """The row's payload as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload::text FROM outbox_event WHERE id = %s", [row.id])
        return cursor.fetchone()[0]


def decoded(row: OutboxEvent):
    row.refresh_from_db()
    return registry.decode(row.type, row.version, row.payload)


def test_a_personal_field_is_stored_sealed_for_its_subject_and_decodes_to_its_value():
    with transaction.atomic():
        row = publish(shipped(uuid.uuid4()), subjects={"customer": "customer:7"})
    text = stored(row)
    assert EMAIL not in text
    assert "grace" not in text.lower()
    assert json.loads(text)["customer_email"]["sealed_for"] == "customer:7"
    assert json.loads(text)["carrier"] == "C"  # what is not personal stays readable
    assert decoded(row).customer_email == EMAIL


def test_a_nested_personal_model_is_sealed_whole():
    with transaction.atomic():
        row = publish(placed(uuid.uuid4()), subjects={"customer": "customer:7", "payment": "payment:x"})
    text = stored(row)
    for value in ("Grace Hopper", "1 Navy Yard", "Arlington", "22202"):
        assert value not in text
    assert decoded(row).shipping_address == ADDRESS


def test_once_the_subject_is_forgotten_the_event_still_decodes_with_its_personal_fields_erased():
    with transaction.atomic():
        mail = publish(shipped(uuid.uuid4()), subjects={"customer": "customer:8"})
        place = publish(placed(uuid.uuid4()), subjects={"customer": "customer:8"})
        other = publish(shipped(uuid.uuid4()), subjects={"customer": "customer:9"})
    # when
    with transaction.atomic():
        assert personal.forget_subject("customer:8") is True
    # then
    assert decoded(mail).customer_email == ""
    assert decoded(mail).tracking_number == "T1"
    assert decoded(place).shipping_address == ERASED_ADDRESS
    assert decoded(place).customer_id == 7
    assert decoded(other).customer_email == EMAIL  # another customer's data is untouched
    assert not SubjectKey.objects.filter(subject="customer:8").exists()
    assert personal.forget_subject("customer:8") is False  # forgetting twice is harmless


def test_a_subject_has_one_key_however_many_events_and_transactions():
    for _ in range(3):
        with transaction.atomic():
            publish(shipped(uuid.uuid4()), subjects={"customer": "customer:10"})
    assert SubjectKey.objects.filter(subject="customer:10").count() == 1


def test_an_event_with_personal_data_published_without_its_subject_is_refused_and_nothing_is_stored():
    before = OutboxEvent.objects.count()
    with (
        pytest.raises(ValueError, match=r"personal data of customer: publish it with subjects=\{'customer': \.\.\.\}"),
        transaction.atomic(),
    ):
        publish(shipped(uuid.uuid4()))
    assert OutboxEvent.objects.count() == before


def test_a_sealed_value_altered_in_the_store_is_a_decode_error_naming_its_subject():
    with transaction.atomic():
        row = publish(shipped(uuid.uuid4()), subjects={"customer": "customer:11"})
    row.refresh_from_db()
    tampered = dict(row.payload)
    ciphertext = tampered["customer_email"]["ciphertext"]
    tampered["customer_email"] = {"sealed_for": "customer:11", "ciphertext": ciphertext[:-6] + "AAAAAA"}
    with pytest.raises(EventDecodeError, match=r"customer:11.*altered, or sealed under another key"):
        registry.decode(row.type, row.version, tampered)


def test_a_value_a_context_keeps_sealed_opens_until_its_subject_is_forgotten():
    with transaction.atomic():
        sealed = personal.seal_value("payment:1", "tok_visa")
    assert "tok_visa" not in sealed
    assert personal.open_value(sealed) == "tok_visa"
    personal.forget_subject("payment:1")
    assert personal.open_value(sealed) is None


@pytest.mark.django_db(transaction=True)
def test_sealing_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match=r"inside the transaction that writes it"):
        personal.seal_value("payment:2", "tok_visa")


@pytest.mark.parametrize(
    "spoiled",
    [{"sealed_for": "customer:12", "ciphertext": "not fernet"}, {"sealed_for": "customer:12", "ciphertext": "é"}],
    ids=["not a token", "not ascii"],
)
def test_a_spoiled_sealed_value_is_a_decode_error_not_a_crash(spoiled):
    with transaction.atomic():
        row = publish(shipped(uuid.uuid4()), subjects={"customer": "customer:12"})
    row.refresh_from_db()
    with pytest.raises(EventDecodeError, match=r"customer:12"):
        registry.decode(row.type, row.version, {**row.payload, "customer_email": spoiled})
    # a value only shaped like one is no sealed value: validation says what is wrong
    with pytest.raises(EventDecodeError, match="customer_email"):
        registry.decode(row.type, row.version, {**row.payload, "customer_email": {"sealed_for": 1, "ciphertext": 2}})
