"""Stock as an event store: each change is one event in the SKU's stream; the projection, the
snapshots and the "as of" query all agree with the fold of that stream."""

import datetime as dt
import importlib
import uuid
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.demo import CATALOGUE
from inventory.events import StockLine, StockReceived
from inventory.models import Product, Reservation, ReservationLine, StockItem, StockSnapshot
from inventory.selectors import stock_as_of, stock_history, stock_level, stock_replayed
from inventory.services import stock_rebuild, stock_receive, stock_release, stock_reserve, stock_ship_out
from inventory.stock import StockState, fold_all
from outbox.events import registry
from outbox.models import OutboxEvent
from outbox.publishing import publish
from tests.factories import make_product

pytestmark = pytest.mark.django_db

MICROSECOND = dt.timedelta(microseconds=1)


def stream(sku: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(aggregate_type="inventory.StockItem", aggregate_id=sku).order_by("id"))


def fold_from_zero(sku: str, *, until: dt.datetime | None = None) -> StockState:
    """The reference: every event of the stream (that occurred by ``until``), folded from nothing."""
    rows = [r for r in stream(sku) if until is None or r.occurred_at <= until]
    return fold_all(StockState(), (registry.decode(r.type, r.version, r.payload) for r in rows))


def level(sku: str, at: dt.datetime | None = None) -> tuple[int, int, int]:
    found = stock_as_of(sku=sku, at=at)
    return found.on_hand, found.reserved, found.available


def projection(sku: str) -> StockState:
    item = StockItem.objects.get(sku=sku)
    return StockState(item.on_hand, item.reserved, item.version)


# one event per change


def test_each_stock_change_appends_one_event_to_the_skus_stream():
    # given a new product with 10 units
    product = make_product(on_hand=10)
    order_id = uuid.uuid4()
    # when it is received, reserved, shipped; and another order reserved and released
    stock_receive(sku=product.sku, quantity=5)
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=2)])
    stock_ship_out(order_id=order_id)
    other = uuid.uuid4()
    stock_reserve(order_id=other, lines=[StockLine(sku=product.sku, quantity=1)])
    stock_release(order_id=other)
    # then the stream records each change, in order, with what changed
    assert [(r.type, r.version, r.aggregate_id, r.payload) for r in stream(product.sku)] == [
        ("inventory.StockReceived", 1, product.sku, {"sku": product.sku, "quantity": 10}),
        ("inventory.StockReceived", 1, product.sku, {"sku": product.sku, "quantity": 5}),
        ("inventory.StockReserved", 1, product.sku, {"sku": product.sku, "quantity": 2, "order_id": str(order_id)}),
        ("inventory.StockShipped", 1, product.sku, {"sku": product.sku, "quantity": 2, "order_id": str(order_id)}),
        ("inventory.StockReserved", 1, product.sku, {"sku": product.sku, "quantity": 1, "order_id": str(other)}),
        (
            "inventory.StockReservationReleased",
            1,
            product.sku,
            {"sku": product.sku, "quantity": 1, "order_id": str(other)},
        ),
    ]
    # and the projection is the fold, up to the stream's last event
    item = StockItem.objects.get(sku=product.sku)
    assert projection(product.sku) == fold_from_zero(product.sku) == StockState(on_hand=13, reserved=0, version=6)
    assert item.position == stream(product.sku)[-1].id


def test_a_reservation_of_several_skus_appends_one_event_to_each_stream_and_one_order_fact():
    # given
    a, b = make_product(on_hand=5), make_product(on_hand=5)
    order_id = uuid.uuid4()
    before = OutboxEvent.objects.count()
    # when
    stock_reserve(order_id=order_id, lines=[StockLine(sku=a.sku, quantity=1), StockLine(sku=b.sku, quantity=2)])
    # then
    written = list(OutboxEvent.objects.order_by("id")[before:])
    assert [(e.type, e.aggregate_id) for e in written] == [
        ("inventory.StockReserved", a.sku),
        ("inventory.StockReserved", b.sku),
        ("inventory.InventoryReserved", str(Reservation.objects.get(order_id=order_id).id)),
    ]


def test_a_short_reservation_and_a_repeated_one_append_nothing_to_the_streams():
    # given
    product = make_product(on_hand=1)
    order_id = uuid.uuid4()
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=product.sku, quantity=5)])  # short
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=1)])
    # when it is retried
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=1)])
    stock_ship_out(order_id=order_id)
    stock_ship_out(order_id=order_id)
    # then
    assert [r.type for r in stream(product.sku)] == [
        "inventory.StockReceived",
        "inventory.StockReserved",
        "inventory.StockShipped",
    ]


def test_a_product_made_with_no_stock_has_an_empty_stream():
    product = make_product(on_hand=0)
    assert stream(product.sku) == []
    assert level(product.sku) == (0, 0, 0)


def test_the_event_and_the_projection_roll_back_together():
    # given
    product = make_product(on_hand=3)
    # when the transaction that received goods fails afterwards
    with pytest.raises(RuntimeError), transaction.atomic():
        stock_receive(sku=product.sku, quantity=7)
        raise RuntimeError("the delivery note was wrong")
    # then neither the event nor the change remains
    assert len(stream(product.sku)) == 1
    assert projection(product.sku) == StockState(on_hand=3, reserved=0, version=1)


# snapshots


def test_a_snapshot_is_written_each_time_a_stream_reaches_a_multiple_of_n(settings):
    # given snapshots every 3 events
    settings.INVENTORY_SNAPSHOT_EVERY = 3
    product = make_product(on_hand=10)  # event 1
    # when seven more events are appended
    for _ in range(7):
        stock_receive(sku=product.sku, quantity=1)
    # then the stream of 8 has snapshots after events 3 and 6, each the fold of the stream up to it
    events = stream(product.sku)
    snapshots = list(StockSnapshot.objects.filter(sku=product.sku).order_by("position"))
    assert [(s.version, s.position, s.occurred_at) for s in snapshots] == [
        (3, events[2].id, events[2].occurred_at),
        (6, events[5].id, events[5].occurred_at),
    ]
    assert [(s.on_hand, s.reserved) for s in snapshots] == [(12, 0), (15, 0)]


# as of


def test_stock_as_of_past_times_around_snapshot_boundaries(settings):
    # given snapshots every 3 events, and the time marked after each event
    settings.INVENTORY_SNAPSHOT_EVERY = 3
    before_anything = timezone.now()
    product = make_product(on_hand=10)  # event 1: 10 on hand
    sku, marks = product.sku, [timezone.now()]
    changes = [
        lambda: stock_reserve(order_id=ORDERS[0], lines=[StockLine(sku=sku, quantity=4)]),  # 2: 10/4
        lambda: stock_receive(sku=sku, quantity=5),  # 3: 15/4, snapshot
        lambda: stock_ship_out(order_id=ORDERS[0]),  # 4: 11/0
        lambda: stock_reserve(order_id=ORDERS[1], lines=[StockLine(sku=sku, quantity=6)]),  # 5: 11/6
        lambda: stock_release(order_id=ORDERS[1]),  # 6: 11/0, snapshot
        lambda: stock_receive(sku=sku, quantity=1),  # 7: 12/0
    ]
    for change in changes:
        change()
        marks.append(timezone.now())
    events = stream(sku)
    assert len(events) == 7
    assert StockSnapshot.objects.filter(sku=sku).count() == 2
    assert all(events[i].occurred_at <= marks[i] < events[i + 1].occurred_at for i in range(6))
    # then: before the first event there was nothing
    assert level(sku, before_anything) == (0, 0, 0)
    assert level(sku, events[0].occurred_at - MICROSECOND) == (0, 0, 0)
    # after each event, its state (at its very instant, and until the next)
    expected = [(10, 0), (10, 4), (15, 4), (11, 0), (11, 6), (11, 0), (12, 0)]
    for event, mark, (on_hand, reserved) in zip(events, marks, expected, strict=True):
        assert level(sku, event.occurred_at) == (on_hand, reserved, on_hand - reserved), event
        assert level(sku, mark) == (on_hand, reserved, on_hand - reserved), event
    # just before each snapshot's event: the state before it
    assert level(sku, events[2].occurred_at - MICROSECOND) == (10, 4, 6)
    assert level(sku, events[5].occurred_at - MICROSECOND) == (11, 6, 5)
    # each answer is the fold from zero of what had occurred by then
    for mark in marks:
        state = fold_from_zero(sku, until=mark)
        assert level(sku, mark) == (state.on_hand, state.reserved, state.available)


ORDERS = [uuid.uuid4(), uuid.uuid4()]


def test_stock_as_of_now_equals_the_projection():
    # given
    product = make_product(on_hand=8)
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=product.sku, quantity=3)])
    # when
    now = stock_as_of(sku=product.sku, at=timezone.now())
    current = stock_level(sku=product.sku)
    # then
    assert (now.on_hand, now.reserved, now.available) == (current.on_hand, current.reserved, current.available)
    assert (current.on_hand, current.reserved, current.available) == (8, 3, 5)


def test_stock_as_of_an_unknown_sku_is_none_and_a_naive_time_is_refused():
    product = make_product()
    assert stock_as_of(sku="NO-SUCH-SKU", at=None) is None
    assert stock_as_of(sku="NO-SUCH-SKU", at=timezone.now()) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        stock_as_of(sku=product.sku, at=dt.datetime(2026, 1, 1))


def test_stock_as_of_reads_a_bounded_slice_of_a_long_stream(settings):
    # given a stream of 40 events, snapshots every 5
    settings.INVENTORY_SNAPSHOT_EVERY = 5
    product = make_product(on_hand=1)
    for _ in range(39):
        stock_receive(sku=product.sku, quantity=1)
    middle = stream(product.sku)[21].occurred_at  # event 22: after the snapshot at 20
    # when / then: three queries (is the SKU known, snapshot before, snapshot after), then the events between
    with CaptureQueriesContext(transaction.get_connection()) as queries:
        assert level(product.sku, middle) == (22, 0, 22)
    assert len(queries) == 4
    events_sql = queries[-1]["sql"]
    assert '"outbox_event"."id" > ' in events_sql
    assert '"outbox_event"."id" < ' in events_sql  # bounded above by the next snapshot, not read to the end


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    every=st.integers(min_value=1, max_value=6),
    steps=st.lists(
        st.tuples(st.sampled_from(["receive", "reserve", "release", "ship"]), st.integers(1, 5)), max_size=25
    ),
)
def test_as_of_from_snapshots_equals_the_fold_from_zero_at_every_moment(settings, every, steps):
    # given any history of one SKU, with snapshots every `every` events
    settings.INVENTORY_SNAPSHOT_EVERY = every
    product = make_product(on_hand=3)
    marks = [timezone.now()]
    held: list[uuid.UUID] = []
    for action, quantity in steps:
        _apply(product.sku, action, quantity, held)
        marks.append(timezone.now())
    # then at every moment the snapshot-based answer is the fold of the whole stream up to then
    for mark in marks:
        state = fold_from_zero(product.sku, until=mark)
        assert level(product.sku, mark) == (state.on_hand, state.reserved, state.available)
    # and now, the projection is that fold too
    assert projection(product.sku) == fold_from_zero(product.sku)


def _apply(sku: str, action: str, quantity: int, held: list[uuid.UUID]) -> None:
    """One step of a random history; reservations that fail, or steps with nothing to act on, change nothing."""
    if action == "receive":
        stock_receive(sku=sku, quantity=quantity)
    elif action == "reserve":
        order_id = uuid.uuid4()
        if stock_reserve(order_id=order_id, lines=[StockLine(sku=sku, quantity=quantity)]).status == "reserved":
            held.append(order_id)
    elif held:
        order_id = held.pop(quantity % len(held))
        (stock_release if action == "release" else stock_ship_out)(order_id=order_id)


# history


def test_history_lists_the_streams_events_newest_first_with_the_stock_after_each(settings):
    # given a stream of 6 events, snapshots every 2
    settings.INVENTORY_SNAPSHOT_EVERY = 2
    product = make_product(on_hand=4)
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[StockLine(sku=product.sku, quantity=3)])
    stock_ship_out(order_id=order_id)
    for _ in range(3):
        stock_receive(sku=product.sku, quantity=2)
    # when the latest three are asked for
    history = stock_history(sku=product.sku, limit=3)
    # then the running balance is right though the older events were not read
    assert [(m.type, m.quantity, m.on_hand, m.reserved) for m in history] == [
        ("inventory.StockReceived", 2, 7, 0),
        ("inventory.StockReceived", 2, 5, 0),
        ("inventory.StockReceived", 2, 3, 0),
    ]
    full = stock_history(sku=product.sku)
    assert [(m.type, m.order_id, m.on_hand, m.reserved) for m in full][-3:] == [
        ("inventory.StockShipped", order_id, 1, 0),
        ("inventory.StockReserved", order_id, 4, 3),
        ("inventory.StockReceived", None, 4, 0),
    ]


# replay


def test_rebuild_replays_the_log_into_a_projection_and_snapshots_that_drifted(settings):
    # given a projection corrupted behind the services' back, and its snapshots lost
    settings.INVENTORY_SNAPSHOT_EVERY = 2
    product = make_product(on_hand=5)
    stock_reserve(order_id=uuid.uuid4(), lines=[StockLine(sku=product.sku, quantity=2)])
    stock_receive(sku=product.sku, quantity=1)
    snapshots = list(StockSnapshot.objects.filter(sku=product.sku).values_list("position", "on_hand", "reserved"))
    StockItem.objects.filter(sku=product.sku).update(on_hand=99, reserved=1, version=0)
    StockSnapshot.objects.filter(sku=product.sku).delete()
    # when
    rebuilt = stock_rebuild(sku=product.sku)
    # then
    assert rebuilt.changed
    assert rebuilt.before == StockState(99, 1, 0)
    assert projection(product.sku) == rebuilt.after == fold_from_zero(product.sku) == StockState(6, 2, 3)
    assert StockItem.objects.get(sku=product.sku).position == stream(product.sku)[-1].id
    assert list(StockSnapshot.objects.filter(sku=product.sku).values_list("position", "on_hand", "reserved")) == (
        snapshots
    )
    assert not stock_rebuild(sku=product.sku).changed


def test_the_rebuild_command_checks_then_corrects_the_projection():
    # given one product whose projection drifted
    good, bad = make_product(on_hand=4), make_product(on_hand=4)
    StockItem.objects.filter(sku=bad.sku).update(on_hand=40)
    # when checked: it fails, naming the SKU, and writes nothing
    out = StringIO()
    with pytest.raises(CommandError, match="differs from the log"):
        call_command("inventory_rebuild", good.sku, bad.sku, "--check", stdout=out)
    assert f"{bad.sku}: projection (40, 0, 1), log (4, 0, 1)" in out.getvalue()
    assert good.sku not in out.getvalue()
    assert StockItem.objects.get(sku=bad.sku).on_hand == 40
    # when rebuilt
    out = StringIO()
    call_command("inventory_rebuild", stdout=out)
    # then
    assert f"{bad.sku}: on hand 40 -> 4, reserved 0 -> 0, events 1 -> 1" in out.getvalue()
    assert "1 differed and were corrected" in out.getvalue()
    assert StockItem.objects.get(sku=bad.sku).on_hand == 4
    call_command("inventory_rebuild", "--check", stdout=StringIO())  # clean now
    assert stock_replayed(sku=bad.sku) == (StockState(4, 0, 1), stream(bad.sku)[-1].id)


def test_the_rebuild_command_refuses_an_unknown_sku():
    with pytest.raises(CommandError, match="NO-SUCH-SKU"):
        call_command("inventory_rebuild", "NO-SUCH-SKU", stdout=StringIO(), stderr=StringIO())


# data


def test_seed_demo_receives_every_unit_through_the_log_once(settings):
    settings.DEBUG = True  # seed_demo runs on a developer's machine only
    # when seeded twice
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    # then each product's stock is exactly one receipt of its opening units
    for sku, _name, _price, on_hand in CATALOGUE:
        assert [(r.type, r.payload["quantity"]) for r in stream(sku)] == [("inventory.StockReceived", on_hand)]
        assert projection(sku) == fold_from_zero(sku) == StockState(on_hand, 0, 1)


def test_the_migration_opens_a_stream_for_stock_that_had_none():
    # given stock written before the event store (no events), with an order holding some of it
    product = Product.objects.create(sku="LEGACY-1", name="Legacy", price="1.00")
    StockItem.objects.create(product=product, sku=product.sku, on_hand=9, reserved=2)
    reservation = Reservation.objects.create(order_id=uuid.uuid4(), status="reserved")
    ReservationLine.objects.create(reservation=reservation, sku=product.sku, quantity=2)
    migration = importlib.import_module("inventory.migrations.0002_stock_event_sourced")
    # when
    migration.open_streams(apps, schema_editor=None)
    # then its stream says what the row said, and the projection is its fold
    assert [(r.type, r.payload) for r in stream(product.sku)] == [
        ("inventory.StockReceived", {"sku": "LEGACY-1", "quantity": 9}),
        (
            "inventory.StockReserved",
            {"sku": "LEGACY-1", "quantity": 2, "order_id": str(reservation.order_id)},
        ),
    ]
    assert projection(product.sku) == fold_from_zero(product.sku) == StockState(9, 2, 2)
    # and running it again opens nothing more
    migration.open_streams(apps, schema_editor=None)
    assert len(stream(product.sku)) == 2


def test_an_append_another_writer_beat_is_folded_in_and_the_service_runs_again():
    # given 10 units, and 4 more appended to the SKU's stream by another writer, which the projection never saw
    product = make_product(on_hand=10)
    with transaction.atomic():
        publish(StockReceived(sku=product.sku, quantity=4))
    assert projection(product.sku).version == 1
    # when 3 units are received through the service
    stock_receive(sku=product.sku, quantity=3)
    # then its first append, at the projection's version, was refused; the projection caught up from the
    # stream and the service ran again: every unit is counted once, each event at its own position
    assert [(r.stream_position, r.payload["quantity"]) for r in stream(product.sku)] == [(1, 10), (2, 4), (3, 3)]
    assert projection(product.sku) == fold_from_zero(product.sku) == StockState(on_hand=17, reserved=0, version=3)
    assert StockItem.objects.get(sku=product.sku).position == stream(product.sku)[-1].id


def test_a_replay_from_a_snapshot_folds_only_what_follows_it_to_the_same_state(settings):
    # given a stream long enough for snapshots
    settings.INVENTORY_SNAPSHOT_EVERY = 3
    product = make_product(on_hand=1)
    for _ in range(6):
        stock_receive(sku=product.sku, quantity=2)
    snapshot = StockSnapshot.objects.filter(sku=product.sku).order_by("-position").first()
    # when replayed from the snapshot, and from the start
    from_snapshot = stock_replayed(sku=product.sku, start=snapshot.state, after=snapshot.position)
    # then both end where the projection is, at the stream's last event
    assert from_snapshot == stock_replayed(sku=product.sku) == (StockState(13, 0, 7), stream(product.sku)[-1].id)
    # and with nothing after the snapshot's position, the snapshot is the answer
    last = stream(product.sku)[-1].id
    assert stock_replayed(sku=product.sku, start=StockState(13, 0, 7), after=last) == (StockState(13, 0, 7), last)
