"""Personal data in the log is sealed under its subject's key, and reads as erased once the key is destroyed."""

import json
import threading
import uuid

import pytest
from django.db import connection, transaction

from outbox import personal
from outbox.events import EventDecodeError, registry
from outbox.models import OutboxEvent, SubjectKey
from outbox.publishing import publish
from tests.outbox.probe.events import ERASED_POSTAL, Enrolled, Postal
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db

ADDRESS = Postal(name="Grace Hopper", line1="1 Navy Yard", city="Arlington", postal_code="22202")
EMAIL = "grace.hopper@members.example"


def emailed(thing_id: uuid.UUID) -> Enrolled:
    """A member's e-mail address: one personal field."""
    return Enrolled(thing_id=thing_id, email=EMAIL)


def addressed(thing_id: uuid.UUID) -> Enrolled:
    """A member's postal address: a nested model, personal whole."""
    return Enrolled(thing_id=thing_id, email=EMAIL, address=ADDRESS)


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
        row = publish(emailed(uuid.uuid4()), subjects={"member": "member:7"})
    text = stored(row)
    assert EMAIL not in text
    assert "grace" not in text.lower()
    assert json.loads(text)["email"]["sealed_for"] == "member:7"
    assert json.loads(text)["plan"] == "C"  # what is not personal stays readable
    assert decoded(row).email == EMAIL


def test_a_nested_personal_model_is_sealed_whole():
    with transaction.atomic():
        row = publish(addressed(uuid.uuid4()), subjects={"member": "member:7"})
    text = stored(row)
    for value in ("Grace Hopper", "1 Navy Yard", "Arlington", "22202"):
        assert value not in text
    assert decoded(row).address == ADDRESS


def test_once_the_subject_is_forgotten_the_event_still_decodes_with_its_personal_fields_erased():
    with transaction.atomic():
        mail = publish(emailed(uuid.uuid4()), subjects={"member": "member:8"})
        place = publish(addressed(uuid.uuid4()), subjects={"member": "member:8"})
        other = publish(emailed(uuid.uuid4()), subjects={"member": "member:9"})
    # when
    with transaction.atomic():
        assert personal.forget_subject("member:8") is True
    # then
    assert decoded(mail).email == ""
    assert decoded(mail).plan == "C"
    assert decoded(place).address == ERASED_POSTAL
    assert decoded(place).member_no == 7
    assert decoded(other).email == EMAIL  # another member's data is untouched
    assert not SubjectKey.objects.filter(subject="member:8").exists()
    assert personal.forget_subject("member:8") is False  # forgetting twice is harmless


def test_a_subject_has_one_key_however_many_events_and_transactions():
    for _ in range(3):
        with transaction.atomic():
            publish(emailed(uuid.uuid4()), subjects={"member": "member:10"})
    assert SubjectKey.objects.filter(subject="member:10").count() == 1


def test_an_event_with_personal_data_published_without_its_subject_is_refused_and_nothing_is_stored():
    before = OutboxEvent.objects.count()
    with (
        pytest.raises(ValueError, match=r"personal data of member: publish it with subjects=\{'member': \.\.\.\}"),
        transaction.atomic(),
    ):
        publish(emailed(uuid.uuid4()))
    assert OutboxEvent.objects.count() == before


def test_a_sealed_value_altered_in_the_store_is_a_decode_error_naming_its_subject():
    with transaction.atomic():
        row = publish(emailed(uuid.uuid4()), subjects={"member": "member:11"})
    row.refresh_from_db()
    tampered = dict(row.payload)
    ciphertext = tampered["email"]["ciphertext"]
    tampered["email"] = {"sealed_for": "member:11", "ciphertext": ciphertext[:-6] + "AAAAAA"}
    with pytest.raises(EventDecodeError, match=r"member:11.*altered, or sealed under another key"):
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
    [{"sealed_for": "member:12", "ciphertext": "not fernet"}, {"sealed_for": "member:12", "ciphertext": "é"}],
    ids=["not a token", "not ascii"],
)
def test_a_spoiled_sealed_value_is_a_decode_error_not_a_crash(spoiled):
    with transaction.atomic():
        row = publish(emailed(uuid.uuid4()), subjects={"member": "member:12"})
    row.refresh_from_db()
    with pytest.raises(EventDecodeError, match=r"member:12"):
        registry.decode(row.type, row.version, {**row.payload, "email": spoiled})
    # a value only shaped like one is no sealed value: validation says what is wrong
    with pytest.raises(EventDecodeError, match="email"):
        registry.decode(row.type, row.version, {**row.payload, "email": {"sealed_for": 1, "ciphertext": 2}})


@pytest.mark.django_db(transaction=True)
def test_two_transactions_sealing_for_a_new_subject_at_once_share_the_key_the_first_committed():
    """The second waits on the first's uncommitted key, then must read it, though its statement began before."""
    sealed, errors = {}, []
    first_sealed, commit_first = threading.Event(), threading.Event()

    def first() -> None:
        try:
            with transaction.atomic():
                sealed["first"] = personal.seal_value("customer:race", "first's")
                first_sealed.set()
                commit_first.wait(timeout=30)
        except Exception as exc:  # reported below, with the other thread's
            errors.append(exc)
        finally:
            connection.close()

    def second() -> None:
        try:
            with transaction.atomic():
                sealed["second"] = personal.seal_value("customer:race", "second's")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_sealed.wait(timeout=30)
    threads[1].start()
    wait_for(lambda: _waiting_on_a_lock() >= 1, timeout=30, what="the second transaction to wait for the first's key")
    commit_first.set()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert personal.open_value(sealed["first"]) == "first's"
    assert personal.open_value(sealed["second"]) == "second's"
    assert SubjectKey.objects.filter(subject="customer:race").count() == 1


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]
