"""A stock item is the fold of its stream: pure functions over values, no database.

Every change to a SKU's stock is an event in that SKU's stream (see
:mod:`inventory.events`); the state after any prefix of the stream is::

    fold_all(StockState(), events)

Folding is associative over a split of the stream, which is what makes
snapshots sound: ``fold_all(fold_all(StockState(), head), tail)`` equals
``fold_all(StockState(), head + tail)``, so a snapshot of the head stands in
for it. :mod:`inventory.services` folds each new event into the ``StockItem``
projection and :mod:`inventory.selectors` folds the log for past states, both
with this one function.

The fold records facts and never refuses one: whether stock *may* be
reserved is decided before the event is written, on the locked row.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

from .events import StockEvent, StockReceived, StockReservationReleased, StockReserved, StockShipped

# event class: (change of on_hand, change of reserved), per unit
_EFFECTS: dict[type[StockEvent], tuple[int, int]] = {
    StockReceived: (1, 0),
    StockReserved: (0, 1),
    StockReservationReleased: (0, -1),
    StockShipped: (-1, -1),
}


@dataclass(frozen=True)
class StockState:
    on_hand: int = 0
    reserved: int = 0
    version: int = 0  # how many events were folded: the length of the stream so far

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def fold(state: StockState, event: StockEvent) -> StockState:
    """The state after ``event``."""
    try:
        on_hand, reserved = _EFFECTS[type(event)]
    except KeyError:
        raise TypeError(f"{type(event).__name__} is not a stock event") from None
    return StockState(
        on_hand=state.on_hand + on_hand * event.quantity,
        reserved=state.reserved + reserved * event.quantity,
        version=state.version + 1,
    )


def fold_all(state: StockState, events: Iterable[StockEvent]) -> StockState:
    return reduce(fold, events, state)
