"""Seal the personal data that orders' events written before this release hold in the clear.

From this release on, ``publish`` seals each personal field under its
subject's key (outbox.personal); this does the same, once, for the events
already in the log, so that forgetting a customer erases those too. The log
is append-only: the trigger that refuses changes to an event's content is
set aside for this transaction only (PostgreSQL rolls the DDL back with it
on failure). What an event says is unchanged: it decodes to the same values,
except the card token of an order that has shipped or was cancelled, which
payments needs no more: its key is destroyed at once.
"""

from uuid import UUID

from django.db import migrations

from customers.events import customer_subject
from outbox.events import registry
from outbox.personal import forget_subjects, is_sealed, personal_fields, seal_field

BATCH = 1000


def seal_the_log(apps, schema_editor):
    Event = apps.get_model("outbox", "OutboxEvent")
    Order = apps.get_model("orders", "Order")
    alias = schema_editor.connection.alias
    postgresql = schema_editor.connection.vendor == "postgresql"
    if postgresql:
        schema_editor.execute("ALTER TABLE outbox_event DISABLE TRIGGER outbox_event_immutable")
    events = Event.objects.using(alias).filter(type__startswith="orders.").order_by("id")
    last = 0
    while batch := list(events.filter(id__gt=last)[:BATCH]):
        last = batch[-1].id
        orders = Order.objects.using(alias).filter(id__in={UUID(e.payload["order_id"]) for e in batch})
        customers = dict(orders.values_list("id", "customer_id"))
        for event in batch:
            if _sealed(event, customers, alias):
                event.save(update_fields=["payload"])
        finished = orders.filter(status__in=["shipped", "cancelled"]).values_list("id", flat=True)
        forget_subjects((f"payment:{order_id}" for order_id in finished), using=alias)
    if postgresql:
        schema_editor.execute("ALTER TABLE outbox_event ENABLE TRIGGER outbox_event_immutable")


def _sealed(event, customers: dict, alias: str) -> bool:
    """Seal the event's personal fields still in the clear; whether there were any."""
    if not registry.is_registered(event.type):
        return False
    order_id = UUID(event.payload["order_id"])
    subjects = {"customer": customer_subject(customers.get(order_id, 0)), "payment": f"payment:{order_id}"}
    changed = False
    for name, marker in personal_fields(registry.get(event.type)).items():
        if name in event.payload and not is_sealed(event.payload[name]):
            event.payload[name] = seal_field(subjects[marker.kind], event.payload[name], using=alias)
            changed = True
    return changed


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0003_payment_token_sealed"),
        ("outbox", "0014_subject_keys"),
        ("customers", "0001_initial"),
    ]

    operations = [migrations.RunPython(seal_the_log, migrations.RunPython.noop, elidable=True)]
