"""The replay's progress: one row per handler and scope, its cursor committed with each batch (outbox/replay.py).

A new table only: nothing else is locked or rewritten.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('outbox', '0011_event_streams'),
    ]

    operations = [
        migrations.CreateModel(
            name='ReplayProgress',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('handler', models.CharField(max_length=200)),
                ('scope', models.CharField(max_length=500)),
                ('queue', models.CharField(max_length=100)),
                ('last_event', models.BigIntegerField(help_text='The id of the last event the replay covers.')),
                ('cursor', models.BigIntegerField(default=0, help_text='The id of the last event done (0: none yet).')),
                ('scanned', models.PositiveBigIntegerField(default=0, help_text='Matching events done, delivered or not.')),
                ('created', models.PositiveBigIntegerField(default=0, help_text='Deliveries created or run again.')),
                ('started_at', models.DateTimeField()),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name_plural': 'replay progress',
                'db_table': 'outbox_replay_progress',
                'constraints': [models.UniqueConstraint(fields=('handler', 'scope'), name='outbox_replay_once_per_scope')],
            },
        ),
    ]
