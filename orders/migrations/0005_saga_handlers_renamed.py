"""The saga's handlers are named after what they record (orders/handlers.py): rename the rows that carry their names.

A subscription's name, ``<app>.<function>``, is stored on each of its
deliveries, inbox entries, circuit and replay progress; a delivery whose
handler no subscription names is buried as "not subscribed". So the rows
move to the new names with the code, and back with it. Run it with the
workers stopped (docs/operations.md, Renaming a handler).
"""

from django.db import migrations

RENAMED = {
    "orders.saga_payment_processed": "orders.record_payment_secured",
    "orders.saga_payment_failed": "orders.record_payment_failed",
    "orders.saga_inventory_reserved": "orders.record_stock_secured",
    "orders.saga_inventory_short": "orders.record_stock_short",
    "orders.saga_shipping_arranged": "orders.record_shipment_arranged",
    "orders.saga_order_cancelled": "orders.record_order_cancelled",
}
# Every table that stores a handler's name (outbox_delivery_failure points at its delivery instead).
CARRIERS = ("Delivery", "InboxEntry", "HandlerCircuit", "ReplayProgress")


def _rename(renamed: dict[str, str]):
    def rename(apps, schema_editor):
        alias = schema_editor.connection.alias
        for model in CARRIERS:
            rows = apps.get_model("outbox", model).objects.using(alias)
            for old, new in renamed.items():
                rows.filter(handler=old).update(handler=new)

    return rename


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0004_seal_personal_data_in_the_log"),
        ("outbox", "0014_subject_keys"),
    ]

    operations = [
        migrations.RunPython(_rename(RENAMED), _rename({new: old for old, new in RENAMED.items()})),
    ]
