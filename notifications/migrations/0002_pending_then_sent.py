"""Notifications commit as pending and are sent after the commit, with a Message-ID of their own.

Rows written before this were sent in the handler's transaction: they keep
their status, their ``sent_at`` becomes their ``created_at`` too, and they get
the Message-ID their (event, kind) has from now on.
"""

from email.utils import parseaddr

import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def backfill(apps, schema_editor):
    Notification = apps.get_model("notifications", "Notification")
    Notification.objects.update(created_at=models.F("sent_at"))
    Notification.objects.filter(status="sent").update(attempts=1)
    domain = settings.NOTIFICATIONS_MESSAGE_ID_DOMAIN or (
        parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    )
    batch = []
    for notification in Notification.objects.only("id", "kind", "event_id").iterator(chunk_size=2000):
        notification.message_id = f"<{notification.kind}.{notification.event_id}@{domain}>"
        batch.append(notification)
        if len(batch) == 2000:
            Notification.objects.bulk_update(batch, ["message_id"])
            batch = []
    Notification.objects.bulk_update(batch, ["message_id"])


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="notification",
            name="message_id",
            field=models.CharField(default="", max_length=255),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="notification",
            name="attempts",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="notification",
            name="last_error",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="notification",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="notification",
            name="sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="notification",
            name="status",
            field=models.CharField(
                choices=[("pending", "Pending"), ("sent", "Sent"), ("skipped", "Skipped"), ("failed", "Failed")],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        migrations.AlterModelOptions(
            name="notification",
            options={"ordering": ["-created_at"]},
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(
                condition=models.Q(("status", "pending")), fields=["next_attempt_at"], name="notifications_pending_due"
            ),
        ),
    ]
