"""Card tokens are no longer kept in the clear: a draft's is sealed, a confirmed order's is dropped.

A confirmed order's token travelled in its OrderConfirmed event; the row
needs it no more. (Migration 0004 seals the tokens that events written
before this release hold in the clear.)
"""

from django.db import migrations, models

from outbox import personal


def seal_tokens(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    alias = schema_editor.connection.alias
    for order in Order.objects.using(alias).exclude(payment_token="").only("id", "status", "payment_token"):
        if order.payment_token.startswith("{"):
            continue
        order.payment_token = (
            personal.seal_value(f"payment:{order.id}", order.payment_token, using=alias)
            if order.status == "draft"
            else ""
        )
        order.save(update_fields=["payment_token"])


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_idempotency_key"),
        ("outbox", "0014_subject_keys"),
    ]

    operations = [
        migrations.AlterField(
            model_name="order",
            name="payment_token",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(seal_tokens, migrations.RunPython.noop, elidable=True),
    ]
