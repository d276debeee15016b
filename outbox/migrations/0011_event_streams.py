"""Every stored event gets its place in its aggregate's stream, and the log becomes append-only.

- ``outbox_stream``: one row per aggregate, its version (how many events its
  stream holds). On PostgreSQL a BEFORE INSERT trigger on ``outbox_event``
  moves it on and gives the new row that position, or, when the insert names
  the position it expects (an append with an expected version), checks it:
  another writer's append there first is refused with SQLSTATE 40001 and the
  constraint name ``outbox_stream_version`` (``outbox.ConcurrencyError``). The
  stream row's lock, held to commit, orders concurrent appends to one stream.
- ``stream_position``, unique per stream; existing events are numbered in
  ``id`` order.
- A trigger refuses UPDATE of an event's content and DELETE: the relay's
  ``relayed_at`` is the only column that may change.

On the embedded SQLite default, ``outbox.publishing`` keeps the stream rows
(SQLite writes one transaction at a time) and nothing refuses updates.
"""

from django.db import migrations, models

NUMBER_EXISTING = """
UPDATE outbox_event SET stream_position = numbered.position
FROM (SELECT id, row_number() OVER (PARTITION BY aggregate_type, aggregate_id ORDER BY id) AS position
      FROM outbox_event) AS numbered
WHERE outbox_event.id = numbered.id
"""
HEADS = """
INSERT INTO outbox_stream (aggregate_type, aggregate_id, version)
SELECT aggregate_type, aggregate_id, max(stream_position) FROM outbox_event GROUP BY aggregate_type, aggregate_id
"""

CONTENT = (
    "event_id, type, version, occurred_at, aggregate_type, aggregate_id, correlation_id, causation_id, "
    "traceparent, payload, stream_position"
)

TRIGGERS = f"""
ALTER TABLE outbox_event ALTER COLUMN stream_position SET NOT NULL;

CREATE FUNCTION outbox_event_append() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head integer;
    fresh boolean;
BEGIN
    IF NEW.stream_position IS NULL THEN  -- the next position, whatever it is
        INSERT INTO outbox_stream AS s (aggregate_type, aggregate_id, version)
        VALUES (NEW.aggregate_type, NEW.aggregate_id, 1)
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = s.version + 1
        RETURNING version INTO NEW.stream_position;
        RETURN NEW;
    END IF;
    -- the position asked for: the stream must be one short of it (an append with an expected version)
    INSERT INTO outbox_stream AS s (aggregate_type, aggregate_id, version)
    VALUES (NEW.aggregate_type, NEW.aggregate_id, NEW.stream_position)
    ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = EXCLUDED.version
        WHERE s.version = EXCLUDED.version - 1
    RETURNING version, xmax = 0 INTO head, fresh;
    IF head IS NULL OR (fresh AND NEW.stream_position <> 1) THEN
        SELECT version INTO head FROM outbox_stream
        WHERE aggregate_type = NEW.aggregate_type AND aggregate_id = NEW.aggregate_id;
        RAISE EXCEPTION 'stream %:% is at version %, not % as this append expected',
            NEW.aggregate_type, NEW.aggregate_id, CASE WHEN fresh THEN 0 ELSE head END, NEW.stream_position - 1
            USING ERRCODE = 'serialization_failure', CONSTRAINT = 'outbox_stream_version',
                  HINT = 'Another writer appended first: reload the aggregate and try again.';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER outbox_event_append BEFORE INSERT ON outbox_event
FOR EACH ROW EXECUTE FUNCTION outbox_event_append();

CREATE FUNCTION outbox_event_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox_event is an append-only log: event % cannot be deleted', OLD.event_id
            USING ERRCODE = 'restrict_violation',
                  HINT = 'Record a correction as a new event; retention prunes deliveries and inbox rows, never events.';
    END IF;
    IF ROW(NEW.event_id, NEW.type, NEW.version, NEW.occurred_at, NEW.aggregate_type, NEW.aggregate_id,
           NEW.correlation_id, NEW.causation_id, NEW.traceparent, NEW.payload::text, NEW.stream_position)
       IS DISTINCT FROM
       ROW(OLD.event_id, OLD.type, OLD.version, OLD.occurred_at, OLD.aggregate_type, OLD.aggregate_id,
           OLD.correlation_id, OLD.causation_id, OLD.traceparent, OLD.payload::text, OLD.stream_position) THEN
        RAISE EXCEPTION 'outbox_event is an append-only log: the content of event % cannot change', OLD.event_id
            USING ERRCODE = 'restrict_violation',
                  HINT = 'Only relayed_at, the relay''s bookkeeping, may be updated; publish a new event instead.';
    END IF;
    RETURN NEW;
END
$$;

-- Column-specific: the relay's UPDATE ... SET relayed_at does not call it at all.
CREATE TRIGGER outbox_event_immutable BEFORE UPDATE OF {CONTENT} OR DELETE ON outbox_event
FOR EACH ROW EXECUTE FUNCTION outbox_event_immutable();
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS outbox_event_immutable ON outbox_event;
DROP FUNCTION IF EXISTS outbox_event_immutable();
DROP TRIGGER IF EXISTS outbox_event_append ON outbox_event;
DROP FUNCTION IF EXISTS outbox_event_append();
ALTER TABLE outbox_event ALTER COLUMN stream_position DROP NOT NULL;
"""


def number_existing(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(NUMBER_EXISTING)
        cursor.execute(HEADS)


def triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGERS, params=None)  # no parameters: its %s are RAISE placeholders


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGERS)


class Migration(migrations.Migration):
    dependencies = [("outbox", "0010_fewer_delivery_indexes")]

    operations = [
        migrations.CreateModel(
            name="OutboxStream",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "aggregate_type", "aggregate_id", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("aggregate_type", models.CharField(max_length=100)),
                ("aggregate_id", models.CharField(max_length=100)),
                ("version", models.PositiveIntegerField()),
            ],
            options={"db_table": "outbox_stream"},
        ),
        migrations.AddField(
            model_name="outboxevent",
            name="stream_position",
            field=models.PositiveIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="outboxevent",
            constraint=models.UniqueConstraint(
                fields=("aggregate_type", "aggregate_id", "stream_position"), name="outbox_event_stream_position"
            ),
        ),
        migrations.RunPython(triggers, drop_triggers),
    ]
