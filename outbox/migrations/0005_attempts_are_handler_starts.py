"""Attempts count handler runs that started, not messages sent (DESIGN.md 3).

Deliveries dispatched before this migration counted their dispatch as an
attempt; they are given that attempt back, since no runner recorded a start.
"""

from django.db import migrations, models

GIVE_BACK = "UPDATE outbox_delivery SET attempts = attempts - 1 WHERE status = 'dispatched' AND attempts > 0"


class Migration(migrations.Migration):
    dependencies = [("outbox", "0004_drop_unused_type_index")]

    operations = [
        migrations.AddField(
            model_name="delivery", name="dispatch_token", field=models.BigIntegerField(blank=True, null=True)
        ),
        migrations.AddField(model_name="delivery", name="started_at", field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="delivery", name="redispatches", field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="delivery", name="crashes", field=models.PositiveIntegerField(default=0)),
        migrations.RunSQL(GIVE_BACK, migrations.RunSQL.noop),
    ]
