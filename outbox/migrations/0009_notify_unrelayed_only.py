"""NOTIFY the relay only for events inserted unrelayed.

``publish`` now inserts an event already fanned out, with its deliveries
dispatched and sent at commit (``OUTBOX_DISPATCH_ON_COMMIT``): waking the
relay process for it would only cost a pass that finds nothing. A row
trigger with a WHEN clause skips the call for those rows without running any
PL/pgSQL; identical notifications of one transaction still fold into one.
"""

from django.db import migrations

CREATE = """
DROP TRIGGER IF EXISTS outbox_event_notify ON outbox_event;
CREATE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event
    FOR EACH ROW WHEN (NEW.relayed_at IS NULL) EXECUTE FUNCTION outbox_event_notify();
"""
RESTORE = """
DROP TRIGGER IF EXISTS outbox_event_notify ON outbox_event;
CREATE TRIGGER outbox_event_notify AFTER INSERT ON outbox_event
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_event_notify();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("outbox", "0008_relay_wakeup")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(RESTORE))]
