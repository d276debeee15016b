"""Migration orders 0005 moves the rows that carry the saga handlers' names to their new names, and back."""

import importlib
import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from outbox.models import Delivery, HandlerCircuit, InboxEntry, OutboxEvent, ReplayProgress
from outbox.subscriptions import subscriptions

pytestmark = pytest.mark.django_db

migration = importlib.import_module("orders.migrations.0005_saga_handlers_renamed")
BEFORE, AFTER = ("orders", "0004_seal_personal_data_in_the_log"), ("orders", "0005_saga_handlers_renamed")
UNTOUCHED = "payments.authorise_payment"


CARRIERS = (Delivery, InboxEntry, HandlerCircuit, ReplayProgress)


def _rows_named(names) -> dict[str, list[str]]:
    """Per table that stores a handler's name: the names its rows of ``names`` carry."""
    return {
        model.__name__: sorted(model.objects.filter(handler__in=names).values_list("handler", flat=True))
        for model in CARRIERS
    }


def _in_every_table(names) -> dict[str, list[str]]:
    return {model.__name__: sorted(names) for model in CARRIERS}


def _store_rows_of(handler: str, event: OutboxEvent) -> None:
    Delivery.objects.create(event=event, handler=handler, queue="orders", due_at=timezone.now())
    InboxEntry.objects.create(handler=handler, event_id=event.event_id)
    HandlerCircuit.objects.create(handler=handler)
    ReplayProgress.objects.create(
        handler=handler, scope="replay type=x", queue="orders.replay", last_event=event.id, started_at=timezone.now()
    )


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([target])


def test_every_new_name_is_a_subscribed_handler_of_the_orders_saga():
    assert set(migration.RENAMED.values()) <= {s.name for s in subscriptions.all()}
    assert not set(migration.RENAMED) & {s.name for s in subscriptions.all()}


def test_the_rows_of_each_renamed_handler_move_to_its_new_name_and_back_and_no_other_row_moves():
    # given the database before the rename, with rows of each old name and of a handler that keeps its name
    _migrate(BEFORE)
    event = OutboxEvent.objects.create(
        type="payments.PaymentProcessed",
        version=1,
        occurred_at=timezone.now(),
        aggregate_type="payments.Payment",
        aggregate_id=str(uuid.uuid4()),
        correlation_id=uuid.uuid4(),
        payload={},
    )
    for old in [*migration.RENAMED, UNTOUCHED]:
        _store_rows_of(old, event)
    old_names, new_names = sorted(migration.RENAMED), sorted(migration.RENAMED.values())
    # when the migration runs
    _migrate(AFTER)
    # then every table's rows carry the new names
    assert _rows_named(new_names) == _in_every_table(new_names)
    assert _rows_named(old_names) == _in_every_table([])
    assert _rows_named([UNTOUCHED]) == _in_every_table([UNTOUCHED])
    # and, unapplied, the old names again
    _migrate(BEFORE)
    assert _rows_named(old_names) == _in_every_table(old_names)
    assert _rows_named(new_names) == _in_every_table([])
    _migrate(AFTER)
