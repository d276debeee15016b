"""Helpers for the fulfilment flows, which run through a real relay and real workers."""

from collections.abc import Iterable

from orders.models import Order
from outbox.models import Delivery, OutboxEvent
from tests.support.processes import wait_for


def wait_until_final(orders: Iterable[Order], *, live_outbox, timeout: float = 30) -> list[Order]:
    """Wait until every order is shipped or cancelled, then return them fresh from the database."""
    ids = [order.id for order in orders]

    def all_final() -> bool:
        return Order.objects.filter(id__in=ids, status__in=Order.FINAL).count() == len(ids)

    wait_for(all_final, timeout=timeout, interval=0.1, what=f"{len(ids)} orders to finish\n{live_outbox.logs()}")
    return list(Order.objects.filter(id__in=ids).order_by("created_at"))


def wait_until_settled(order: Order, *, live_outbox, timeout: float = 30) -> list[OutboxEvent]:
    """Wait until every event of the order's life is relayed and each delivery is done or dead.

    Handlers publish in the transaction that finishes their delivery, so once
    nothing is unrelayed or unfinished, nothing more will happen.
    """

    def settled() -> bool:
        events = OutboxEvent.objects.filter(correlation_id=order.correlation_id)
        unfinished = Delivery.objects.filter(event__in=events, status__in=Delivery.UNFINISHED)
        return events.exists() and not events.filter(relayed_at__isnull=True).exists() and not unfinished.exists()

    wait_for(settled, timeout=timeout, interval=0.1, what=f"order {order.id} to settle\n{live_outbox.logs()}")
    return events_of(order)


def events_of(order: Order) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(correlation_id=order.correlation_id).order_by("id"))


def types_of(events: Iterable[OutboxEvent]) -> list[str]:
    return [event.type for event in events]


def one(events: Iterable[OutboxEvent], type_: str) -> OutboxEvent:
    found = [event for event in events if event.type == type_]
    assert len(found) == 1, f"expected exactly one {type_}, found {len(found)} in {types_of(events)}"
    return found[0]


def dead_letters_of(order: Order) -> list[Delivery]:
    return list(Delivery.objects.filter(event__correlation_id=order.correlation_id, status=Delivery.Status.DEAD))
