"""Two indexes fewer on every delivery write.

The event FK is served by the unique (event, handler) index; the resolver FK
(NULL on nearly every row) gets a partial index instead of one on every row.
Each delivery row version (created, started, finished) then updates two
indexes fewer. Indexes are dropped and built CONCURRENTLY on PostgreSQL, so
the deploy never locks the delivery table; the FK constraints stay as they are.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = ["outbox_delivery_event_id_9d7b7ab0", "outbox_delivery_resolved_by_id_a0229622"]
PARTIAL = (
    'CREATE INDEX {} IF NOT EXISTS "outbox_delivery_resolved_by" ON "outbox_delivery" ("resolved_by_id") '
    'WHERE "resolved_by_id" IS NOT NULL'
)
RESTORED = [
    'CREATE INDEX {} IF NOT EXISTS "outbox_delivery_event_id_9d7b7ab0" ON "outbox_delivery" ("event_id")',
    'CREATE INDEX {} IF NOT EXISTS "outbox_delivery_resolved_by_id_a0229622" ON "outbox_delivery" ("resolved_by_id")',
]


def _concurrently(schema_editor) -> str:
    return "CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def forwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    for name in DROPPED:
        schema_editor.execute(f'DROP INDEX {how} IF EXISTS "{name}"')
    schema_editor.execute(PARTIAL.format(how))


def backwards(apps, schema_editor):
    how = _concurrently(schema_editor)
    for sql in RESTORED:
        schema_editor.execute(sql.format(how))
    schema_editor.execute(f'DROP INDEX {how} IF EXISTS "outbox_delivery_resolved_by"')


class Migration(migrations.Migration):
    atomic = False  # CREATE / DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("outbox", "0009_notify_unrelayed_only"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="event",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="outbox.outboxevent",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="resolved_by",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(
                        condition=models.Q(("resolved_by__isnull", False)),
                        fields=["resolved_by"],
                        name="outbox_delivery_resolved_by",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
