"""Every failed attempt of a delivery on record (outbox.DeliveryFailure), for the causal trace.

A new table only: nothing else is locked or rewritten. On PostgreSQL its foreign key to the delivery is
``ON DELETE CASCADE``, so that the retention's batched DELETE of deliveries takes their failures with it.
(Django 5.2 cannot declare a database-level cascade, so the model says ``db_constraint=False`` and the
constraint is written here.)
"""

from django.db import migrations, models

FOREIGN_KEY = """
ALTER TABLE outbox_delivery_failure ADD CONSTRAINT outbox_delivery_failure_delivery_fk
    FOREIGN KEY (delivery_id) REFERENCES outbox_delivery (id) ON DELETE CASCADE
"""


def cascade(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FOREIGN_KEY)


class Migration(migrations.Migration):

    dependencies = [
        ('outbox', '0012_replay_progress'),
    ]

    operations = [
        migrations.CreateModel(
            name='DeliveryFailure',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('attempt', models.PositiveIntegerField()),
                ('cause', models.CharField(choices=[('handler_error', 'handler error'), ('permanent', 'permanent failure'), ('retry_later', 'retry later (counted)'), ('time_limit', 'time limit'), ('worker_lost', 'worker lost'), ('undeliverable', 'undeliverable')], max_length=20)),
                ('error_type', models.CharField(blank=True, default='', max_length=200)),
                ('error', models.TextField(blank=True, default='', help_text="The error's first lines.")),
                ('counted', models.BooleanField(default=True)),
                ('failed_at', models.DateTimeField()),
                ('delivery', models.ForeignKey(db_constraint=False, on_delete=models.deletion.DO_NOTHING, related_name='failures', to='outbox.delivery')),
            ],
            options={
                'db_table': 'outbox_delivery_failure',
                'ordering': ['id'],
            },
        ),
        migrations.RunPython(cascade, migrations.RunPython.noop),
    ]
