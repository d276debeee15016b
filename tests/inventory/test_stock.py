"""The fold of a stock stream, as pure functions: no database."""

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.events import StockReceived, StockReservationReleased, StockReserved, StockShipped
from inventory.stock import StockState, fold, fold_all
from orders.events import OrderCancelled

SKU = "PEN-BLUE"
ORDER = uuid.UUID(int=1)


def test_each_stock_event_moves_on_hand_and_reserved_as_its_name_says():
    # given
    state = StockState(on_hand=10, reserved=4, version=7)
    # when / then
    assert fold(state, StockReceived(sku=SKU, quantity=5)) == StockState(15, 4, 8)
    assert fold(state, StockReserved(sku=SKU, order_id=ORDER, quantity=3)) == StockState(10, 7, 8)
    assert fold(state, StockReservationReleased(sku=SKU, order_id=ORDER, quantity=3)) == StockState(10, 1, 8)
    assert fold(state, StockShipped(sku=SKU, order_id=ORDER, quantity=3)) == StockState(7, 1, 8)


def test_the_empty_stream_is_no_stock():
    assert fold_all(StockState(), []) == StockState(on_hand=0, reserved=0, version=0)
    assert StockState().available == 0


def test_an_event_of_another_stream_is_refused():
    event = OrderCancelled.model_construct(order_id=ORDER)
    with pytest.raises(TypeError, match="OrderCancelled is not a stock event"):
        fold(StockState(), event)


def test_a_stream_of_a_receipt_a_reservation_and_its_shipment():
    events = [
        StockReceived(sku=SKU, quantity=10),
        StockReserved(sku=SKU, order_id=ORDER, quantity=3),
        StockShipped(sku=SKU, order_id=ORDER, quantity=3),
    ]
    state = fold_all(StockState(), events)
    assert (state.on_hand, state.reserved, state.available, state.version) == (7, 0, 7, 3)


quantities = st.integers(min_value=1, max_value=1000)
stock_events = st.one_of(
    st.builds(StockReceived, sku=st.just(SKU), quantity=quantities),
    st.builds(StockReserved, sku=st.just(SKU), order_id=st.uuids(), quantity=quantities),
    st.builds(StockReservationReleased, sku=st.just(SKU), order_id=st.uuids(), quantity=quantities),
    st.builds(StockShipped, sku=st.just(SKU), order_id=st.uuids(), quantity=quantities),
)


@given(events=st.lists(stock_events, max_size=60), data=st.data())
def test_folding_from_a_snapshot_equals_folding_from_zero(events, data):
    # given the stream split anywhere: a snapshot of the head, then the tail
    split = data.draw(st.integers(min_value=0, max_value=len(events)), label="split")
    snapshot = fold_all(StockState(), events[:split])
    # when
    from_snapshot = fold_all(snapshot, events[split:])
    # then
    assert from_snapshot == fold_all(StockState(), events)
    assert from_snapshot.version == len(events)


@given(events=st.lists(stock_events, max_size=60))
def test_on_hand_and_reserved_are_the_sums_of_their_events(events):
    state = fold_all(StockState(), events)

    def total(*types) -> int:
        return sum(e.quantity for e in events if isinstance(e, types))

    assert state.on_hand == total(StockReceived) - total(StockShipped)
    assert state.reserved == total(StockReserved) - total(StockReservationReleased, StockShipped)
