"""The relay kick's coalescing flag moves from the cache into the database (outbox/wakeup.py).

No row is inserted here: the first kick makes it (an upsert), so a flushed table works too.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0007_failure_causes_and_circuits"),
    ]

    operations = [
        migrations.CreateModel(
            name="RelayWakeup",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("queued_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"db_table": "outbox_relay_wakeup"},
        ),
    ]
