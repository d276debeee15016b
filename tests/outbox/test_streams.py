"""The event store's contract: a position per aggregate stream, appends with an expected version, an append-only log."""

import threading
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from outbox import ConcurrencyError
from outbox.models import Delivery, OutboxEvent, OutboxStream
from outbox.publishing import publish
from tests.outbox.probe.events import Pinged

pytestmark = pytest.mark.django_db(transaction=True)


def append(thing: uuid.UUID, *, expected_version: int | None = None, seq: int = 0) -> OutboxEvent:
    with transaction.atomic():
        return publish(Pinged(thing_id=thing, seq=seq), expected_version=expected_version)


def stream_of(thing: uuid.UUID) -> list[tuple[int, int]]:
    rows = OutboxEvent.objects.filter(aggregate_type="probe.Thing", aggregate_id=str(thing)).order_by("id")
    return list(rows.values_list("stream_position", "payload__seq"))


def test_each_event_takes_the_next_position_of_its_own_stream():
    # given two aggregates
    one, other = uuid.uuid4(), uuid.uuid4()
    # when events of both are appended, interleaved
    for seq in range(3):
        append(one, seq=seq)
        append(other, seq=seq)
    # then each stream counts from 1, in append order, and its head says how many it holds
    assert stream_of(one) == [(1, 0), (2, 1), (3, 2)]
    assert stream_of(other) == [(1, 0), (2, 1), (3, 2)]
    assert OutboxStream.objects.get(aggregate_type="probe.Thing", aggregate_id=str(one)).version == 3


def test_an_append_at_the_version_it_expects_takes_the_next_position():
    thing = uuid.uuid4()
    assert append(thing, expected_version=0).stream_position == 1
    assert append(thing, expected_version=1).stream_position == 2
    assert stream_of(thing) == [(1, 0), (2, 0)]


@pytest.mark.parametrize(("existing", "expected"), [(2, 1), (2, 3), (0, 4)], ids=["behind", "ahead", "new-stream"])
def test_an_append_expecting_another_version_is_refused_and_stores_nothing(existing, expected):
    # given a stream of ``existing`` events
    thing = uuid.uuid4()
    for seq in range(existing):
        append(thing, seq=seq)
    # when an append expects it at another version
    with pytest.raises(ConcurrencyError, match=rf"probe\.Thing:{thing} moved past version {expected}") as refused:
        append(thing, expected_version=expected, seq=99)
    # then it is refused, saying which stream, and the stream is as it was
    assert (refused.value.aggregate_id, refused.value.expected) == (str(thing), expected)
    assert stream_of(thing) == [(position, position - 1) for position in range(1, existing + 1)]
    assert not Delivery.objects.filter(event__payload__seq=99).exists()


def test_two_writers_appending_at_one_version_one_wins_and_the_other_is_refused():
    # given a stream at version 1, and two writers (each a database session of its own) who both read it there
    thing = uuid.uuid4()
    append(thing)
    first_appended, first_may_commit, outcomes = threading.Event(), threading.Event(), {}

    def writer(name: str, seq: int) -> None:
        try:
            with transaction.atomic():
                publish(Pinged(thing_id=thing, seq=seq), expected_version=1)
                if name == "first":
                    first_appended.set()
                    first_may_commit.wait(timeout=10)  # commits once the second is queued behind it
            outcomes[name] = "appended"
        except ConcurrencyError as conflict:
            outcomes[name] = conflict
        finally:
            connection.close()

    first = threading.Thread(target=writer, args=("first", 1))
    second = threading.Thread(target=writer, args=("second", 2))
    # when the first appends and, before it commits, the second appends at the same version
    first.start()
    assert first_appended.wait(timeout=10)
    second.start()
    _wait_for_a_lock_wait()  # the second's append waits on the stream's row, locked by the first until it commits
    first_may_commit.set()
    first.join(timeout=20)
    second.join(timeout=20)
    # then exactly one appended; the other was refused, to reload and retry, and stored nothing
    assert outcomes["first"] == "appended"
    assert isinstance(outcomes["second"], ConcurrencyError)
    assert stream_of(thing) == [(1, 0), (2, 1)]


def _wait_for_a_lock_wait(timeout: float = 10.0) -> None:
    """Until some session of this database waits on a lock (the second writer, queued on the stream row)."""
    from tests.support.processes import wait_for

    def waiting() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    wait_for(waiting, timeout=timeout, interval=0.02, what="the second writer to wait on the stream's lock")


def test_the_log_refuses_a_change_to_an_event_or_its_removal():
    # given a stored event
    row = append(uuid.uuid4())
    # when its content is changed, or it is deleted: refused by the database, whatever the client
    with pytest.raises(IntegrityError, match="append-only log: the content of event"), transaction.atomic():
        OutboxEvent.objects.filter(id=row.id).update(payload={"thing_id": str(uuid.uuid4()), "seq": 5})
    refused = pytest.raises(IntegrityError, match=r"append-only log: event .* cannot be deleted")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM outbox_event WHERE id = %s", [row.id])
    # then the event is as it was; the relay's bookkeeping column may still change
    OutboxEvent.objects.filter(id=row.id).update(relayed_at=timezone.now())
    stored = OutboxEvent.objects.get(id=row.id)
    assert (stored.payload, stored.stream_position) == (row.payload, 1)
    assert stored.relayed_at is not None


def test_an_event_written_without_publish_still_takes_its_stream_position():
    # given a stream with one event published
    thing = uuid.uuid4()
    append(thing)
    # when a row is written straight through the ORM, as older code or a data migration would
    row = OutboxEvent.objects.create(
        type="probe.Pinged",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="probe.Thing",
        aggregate_id=str(thing),
        correlation_id=uuid.uuid4(),
        payload={"thing_id": str(thing), "seq": 7},
    )
    # then the database gave it the stream's next position
    row.refresh_from_db()
    assert row.stream_position == 2
