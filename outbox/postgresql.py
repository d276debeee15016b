"""The outbox's hot path, written out by hand for PostgreSQL.

Each function here does in one round trip what the portable ORM code in
``relay.py`` and ``runner.py`` does in several; those modules call these on
PostgreSQL and keep the ORM for the embedded SQLite default. Benchmarks
(bench/outbox_bench.py) measured the difference: the ORM claim of one
delivery took 2.0 ms, this one 0.45 ms, on the latency path of every event.
"""

import functools
import json
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection, connections

from .conf import outbox_setting
from .failures import UNKNOWN_TYPE, UNKNOWN_TYPE_PATTERN
from .models import UNKNOWN_TYPE_HANDLER, Delivery, OutboxEvent

# The start and the claim look their batch up by primary key. Their status test
# is wrapped so that the planner cannot serve it from the partial due index:
# with statistics from when the table was small it would (its estimate is a
# few rows), and a bitmap scan of that index re-reads every dead entry a busy
# queue leaves in it until VACUUM (0.3 ms and growing, measured).
BY_ID_ONLY = "CASE WHEN {} THEN true END"

ONLY_WHEN_ASKED = 2**31  # psycopg prepares a statement after this many runs, or at once with prepare=True


def plan_once(sender, connection, **kwargs) -> None:
    """On a new PostgreSQL connection: plan the outbox's prepared statements once, not at every run.

    PostgreSQL keeps re-planning a prepared statement whose generic plan it
    estimates dearer than a custom one (the claim's, for one: 0.3 ms a run).
    The setting touches only prepared statements, and Django prepares none
    of its own (it turns psycopg's preparing off).
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")


def prepared(sql: str, params: dict[str, Any], *, using: str = "default") -> list[tuple]:
    """Run one statement as a server-side prepared statement, and return its rows.

    Django's psycopg cursors bind parameters client-side, so PostgreSQL
    parses and plans every statement anew: 0.2 to 0.4 ms each for the CTEs of
    the hot path, more than running them. Prepared once per connection, they
    are planned once. (Behind PgBouncer in transaction mode this needs
    PgBouncer 1.21+ with ``max_prepared_statements`` set.)
    """
    connection = connections[using]
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:  # Django turns preparing off; this lets only explicit requests through
        raw.prepare_threshold = ONLY_WHEN_ASKED

    def execute(sql: str, params: dict[str, Any], many: bool, context: dict[str, Any]) -> list[tuple]:
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall() if cursor.description else []

    # Through the connection's execute wrappers, as any query of Django's: instrumentation sees these too.
    for wrapper in reversed(connection.execute_wrappers):
        execute = functools.partial(wrapper, execute)
    return execute(sql, params, False, {"connection": connection, "cursor": None})


# stream_position NULL: the database gives the stream's next one (the outbox_event_append trigger,
# migration 0011); a number: the position the append expects, refused if another writer took it.
INSERT_EVENT_SQL = """
INSERT INTO outbox_event (event_id, type, version, occurred_at, aggregate_type, aggregate_id,
                          correlation_id, causation_id, traceparent, payload, stream_position)
VALUES (%(event_id)s, %(type)s, %(version)s, %(occurred_at)s, %(aggregate_type)s, %(aggregate_id)s,
        %(correlation_id)s, %(causation_id)s, %(traceparent)s, %(payload)s, %(stream_position)s::integer)
RETURNING id, stream_position
"""


def _event_params(row: OutboxEvent) -> dict[str, Any]:
    return {
        "event_id": row.event_id,
        "type": row.type,
        "version": row.version,
        "occurred_at": row.occurred_at,
        "aggregate_type": row.aggregate_type,
        "aggregate_id": row.aggregate_id,
        "correlation_id": row.correlation_id,
        "causation_id": row.causation_id,
        "traceparent": row.traceparent,
        "payload": json.dumps(row.payload),
        "stream_position": row.stream_position,
    }


def insert_event(row: OutboxEvent, *, using: str = "default") -> None:
    """Insert an outbox row built by ``publish``, setting its id."""
    [(row.id, row.stream_position)] = prepared(INSERT_EVENT_SQL, _event_params(row), using=using)
    row._state.adding, row._state.db = False, using


# The event, already relayed, and its deliveries, in one statement (publish with
# OUTBOX_DISPATCH_ON_COMMIT). Deliveries to an ordered handler, or to one whose
# circuit is open, half-open or paused, are created pending for the relay, and
# the relay process is woken for them (the trigger NOTIFYs only unrelayed events).
PUBLISH_SQL = """
WITH event AS (
    INSERT INTO outbox_event (event_id, type, version, occurred_at, aggregate_type, aggregate_id,
                              correlation_id, causation_id, traceparent, payload, relayed_at, stream_position)
    VALUES (%(event_id)s, %(type)s, %(version)s, %(occurred_at)s, %(aggregate_type)s, %(aggregate_id)s,
            %(correlation_id)s, %(causation_id)s, %(traceparent)s, %(payload)s, now(), %(stream_position)s::integer)
    RETURNING id, stream_position
), subscribed AS (
    SELECT s.handler, s.queue, s.ordered, s.ordered OR c.handler IS NOT NULL AS hold
    FROM unnest(%(handlers)s::text[], %(queues)s::text[], %(ordered)s::bool[]) AS s(handler, queue, ordered)
    LEFT JOIN outbox_handler_circuit c ON c.handler = s.handler AND (c.paused OR c.state <> 'closed')
), created AS (
    INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, ordering_key,
                                 last_error, traceback, error_type, error_pattern, created_at, dispatched_at,
                                 dispatch_token, redispatches, crashes)
    SELECT e.id, s.handler, s.queue,
           CASE WHEN s.hold THEN 'pending' ELSE 'dispatched' END,
           0,
           CASE WHEN s.hold THEN now() ELSE now() + %(lease)s * interval '1 second' END,
           CASE WHEN s.ordered THEN %(ordering_key)s END,
           '', '', '', '', now(),
           CASE WHEN s.hold THEN NULL ELSE now() END,
           CASE WHEN s.hold THEN NULL ELSE %(token)s END,
           0, 0
    FROM event e CROSS JOIN subscribed s
    RETURNING id, handler, queue, status
), woken AS (
    SELECT pg_notify('outbox_event', 'held') FROM (SELECT 1 FROM created WHERE status = 'pending' LIMIT 1) p
)
SELECT 'event', e.id, NULL, NULL, e.stream_position FROM event e
UNION ALL
SELECT c.status, c.id, c.handler, c.queue, NULL FROM created c
UNION ALL
SELECT 'woken', NULL, NULL, NULL, NULL FROM woken
"""


def insert_event_with_deliveries(
    row: OutboxEvent, *, subscriptions: list[Any], token: int, using: str = "default"
) -> tuple[list[Delivery], bool]:
    """Insert an event built by ``publish``, relayed, with a delivery per subscription; one statement.

    Returns the deliveries created dispatched under ``token`` (for the caller
    to send once its transaction commits), and whether any was created pending.
    """
    params = {
        **_event_params(row),
        "handlers": [s.name for s in subscriptions],
        "queues": [s.queue for s in subscriptions],
        "ordered": [s.ordered for s in subscriptions],
        "ordering_key": row.ordering_key,
        "lease": outbox_setting("LEASE_SECONDS"),
        "token": token,
    }
    rows = prepared(PUBLISH_SQL, params, using=using)
    row.id, row.stream_position = next((r[1], r[4]) for r in rows if r[0] == "event")
    row._state.adding, row._state.db = False, using
    dispatched = [Delivery(id=r[1], handler=r[2], queue=r[3]) for r in rows if r[0] == "dispatched"]
    return dispatched, any(r[0] == "pending" for r in rows)


# SET LOCAL first, in the same round trip (an implicit transaction when in
# autocommit): with few unrelayed rows the planner picks a bitmap scan of the
# partial index, which never marks the entries of relayed (dead) row versions
# as dead, so every claim re-reads all of them until VACUUM runs: 4 ms per
# claim after a few seconds of load. A plain index scan marks them as it
# passes, and the next claim skips them (0.5 ms and falling).
#
# Times are the database's (now()), so that every relay, runner and host
# compares leases and due times on one clock.
FAN_OUT_SQL = f"""
SET LOCAL enable_bitmapscan = off;
WITH claimed AS (
    SELECT id FROM outbox_event WHERE relayed_at IS NULL ORDER BY id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
), relayed AS (
    UPDATE outbox_event e SET relayed_at = now() FROM claimed WHERE e.id = claimed.id
    RETURNING e.id, e.type, e.aggregate_type, e.aggregate_id
), subscribed AS (
    -- "hold": created pending, for dispatch_due to send: ordered handlers (their predecessors are checked
    -- there), and handlers whose circuit is open, half-open or paused (outbox.breaker).
    SELECT s.*, s.ordered OR c.handler IS NOT NULL AS hold
    FROM unnest(%(types)s::text[], %(handlers)s::text[], %(queues)s::text[], %(ordered)s::bool[])
        AS s(type, handler, queue, ordered)
    LEFT JOIN outbox_handler_circuit c ON c.handler = s.handler AND (c.paused OR c.state <> 'closed')
), created AS (
    INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, ordering_key,
                                 last_error, traceback, error_type, error_pattern, created_at, dispatched_at,
                                 dispatch_token, redispatches, crashes)
    SELECT r.id, s.handler, s.queue,
           CASE WHEN s.hold THEN 'pending' ELSE 'dispatched' END,
           0,
           CASE WHEN s.hold THEN now() ELSE now() + %(lease)s * interval '1 second' END,
           CASE WHEN s.ordered THEN r.aggregate_type || ':' || r.aggregate_id END,
           '', '', '', '', now(),
           CASE WHEN s.hold THEN NULL ELSE now() END,
           CASE WHEN s.hold THEN NULL ELSE %(token)s END,
           0, 0
    FROM relayed r JOIN subscribed s ON s.type = r.type
    RETURNING id, handler, queue, status
), unknown AS (
    INSERT INTO outbox_delivery (event_id, handler, queue, status, attempts, due_at, last_error, traceback,
                                 error_type, error_pattern, created_at, finished_at, redispatches, crashes)
    SELECT r.id, '{UNKNOWN_TYPE_HANDLER}', 'outbox', 'dead', 0, now(),
           'Unknown event type ' || quote_literal(r.type) || ': no class is registered for it, so no handler gets it.',
           '', '{UNKNOWN_TYPE}', '{UNKNOWN_TYPE_PATTERN}',
           now(), now(), 0, 0
    FROM relayed r WHERE NOT r.type = ANY(%(known)s::text[])
)
SELECT 'event', r.type, NULL, NULL FROM relayed r
UNION ALL
SELECT 'delivery', c.handler, c.queue, c.id FROM created c WHERE c.status = 'dispatched'
"""


def fan_out(
    *, batch_size: int, token: int, subscriptions: list[Any], known_types: list[str]
) -> tuple[list[str], list[Delivery]]:
    """Claim, mark and fan out up to ``batch_size`` unrelayed events in one statement.

    Returns the relayed events' types and the deliveries created already
    dispatched (under ``token``, with no attempt spent yet).
    """
    params = {
        "batch": batch_size,
        "lease": outbox_setting("LEASE_SECONDS"),
        "token": token,
        "types": [s.event_type for s in subscriptions],
        "handlers": [s.name for s in subscriptions],
        "queues": [s.queue for s in subscriptions],
        "ordered": [s.ordered for s in subscriptions],
        "known": known_types,
    }
    with connection.cursor() as cursor:
        cursor.execute(FAN_OUT_SQL, params)
        cursor.nextset()  # past the SET
        rows = cursor.fetchall()
    types = [row[1] for row in rows if row[0] == "event"]
    dispatched = [Delivery(id=row[3], handler=row[1], queue=row[2]) for row in rows if row[0] == "delivery"]
    return types, dispatched


def prefer_index_scans() -> None:
    """For the rest of the current transaction, claim by index scans (see FAN_OUT_SQL for why)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_bitmapscan = off")


# The start's commit does not wait for its WAL to reach the disk. Other runners
# and relays see it at once all the same; the batch's own commit, later and
# synchronous, flushes it along. Only a database crash within a fraction of a
# second of the start can lose it, and then the batch's work was lost too: its
# deliveries look unstarted again, and no attempt is counted for a run that
# left nothing behind. That saves an fsync per batch.

START_SQL = f"""
WITH own AS (
    SELECT id, handler, queue, started_at, crashes FROM outbox_delivery
    WHERE id = ANY(%(ids)s::bigint[]) AND {BY_ID_ONLY.format("status = 'dispatched'")}
      AND (%(token)s::bigint IS NULL OR dispatch_token = %(token)s)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), parked AS (
    UPDATE outbox_delivery d SET status = 'pending', due_at = now(), dispatch_token = NULL
    FROM own o JOIN outbox_handler_circuit c ON c.handler = o.handler
    WHERE d.id = o.id AND o.started_at IS NULL
      AND (c.paused OR c.state = 'open' OR (c.state = 'half_open' AND c.probe_delivery_id IS DISTINCT FROM o.id))
    RETURNING d.id
), taken AS (
    SELECT d.id, d.queue, NULL::timestamptz AS started_at, d.crashes FROM outbox_delivery d
    WHERE %(take)s > 0
      AND d.queue = (SELECT queue FROM own LIMIT 1)
      AND NOT EXISTS (SELECT 1 FROM own WHERE own.crashes > 0)
      AND d.status = 'dispatched' AND d.started_at IS NULL AND d.crashes = 0 AND NOT d.id = ANY(%(ids)s)
      AND d.dispatched_at < now() - %(backlog)s * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM outbox_handler_circuit c
                      WHERE c.handler = d.handler AND (c.paused OR c.state <> 'closed'))
    ORDER BY d.dispatched_at
    LIMIT %(take)s
    FOR UPDATE OF d SKIP LOCKED
), batch AS (
    SELECT id, started_at FROM own WHERE NOT id IN (SELECT id FROM parked)
    UNION ALL SELECT id, started_at FROM taken
), started AS (
    UPDATE outbox_delivery d
    SET attempts = d.attempts + 1, started_at = now(), due_at = now() + %(lease)s * interval '1 second'
    FROM batch b WHERE d.id = b.id AND b.started_at IS NULL
    -- the commit of this statement's implicit transaction does not wait for the disk (see above)
    RETURNING d.id, d.started_at, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
)
SELECT b.id, s.started_at, b.started_at < now() - %(grace)s * interval '1 second', false, s.async_commit
FROM batch b LEFT JOIN started s ON s.id = b.id
UNION ALL
SELECT id, NULL, false, true, NULL FROM parked
"""


def start(
    *, delivery_ids: list[int], token: int | None, lease: float, grace: float, take: int, backlog: float
) -> list[tuple]:
    """Record, committed, that this runner starts the batch's dispatched deliveries; one statement.

    It also takes up to ``take`` more deliveries that have waited unstarted in
    the same queue for ``backlog`` seconds or more, oldest first (not when the
    message is one of a delivery that crashed a worker, which runs alone):
    under a backlog a task then does a batch's work, and those deliveries' own
    messages find them done. At light load nothing waits that long. Returns
    ``(id, started_at, lost)`` for each delivery dispatched under ``token``
    (or taken) that no runner holds: ``started_at`` is set for those it
    started now; for one started before (``started_at`` None), ``lost`` says
    whether that start is older than ``grace``.
    """
    params = {"ids": delivery_ids, "token": token, "lease": lease, "grace": grace, "take": take, "backlog": backlog}
    return prepared(START_SQL, params)


CLAIM_SQL = f"""
SELECT d.id, d.handler, d.queue, d.status, d.attempts, d.ordering_key,
       e.id, e.event_id, e.type, e.version, e.occurred_at, e.aggregate_type, e.aggregate_id,
       e.correlation_id, e.causation_id, e.traceparent, e.payload::text,
       EXISTS (SELECT 1 FROM outbox_inbox i WHERE i.handler = d.handler AND i.event_id = e.event_id),
       d.due_at, d.finished_at, d.started_at, d.crashes
FROM unnest(%(ids)s::bigint[]) AS batch(id)
JOIN outbox_delivery d ON d.id = batch.id
JOIN outbox_event e ON e.id = d.event_id
WHERE {BY_ID_ONLY.format("d.status = 'dispatched'")} AND d.started_at = %(started_at)s
ORDER BY d.id
FOR UPDATE OF d SKIP LOCKED
"""


# The run's claim also marks the batch done and writes its inbox rows, in the
# same statement: they commit with the handlers' effects or not at all, like
# a finish after the handlers would, one round trip fewer. A delivery that then
# fails, or goes back, is set back by the runner before the commit (its status
# by the failure's own update, its inbox row dropped: runner._unfinish).
CLAIM_AND_FINISH_SQL = f"""
WITH claimed AS (
    SELECT d.id FROM unnest(%(ids)s::bigint[]) AS batch(id) JOIN outbox_delivery d ON d.id = batch.id
    WHERE {BY_ID_ONLY.format("d.status = 'dispatched'")} AND d.started_at = %(started_at)s
    ORDER BY d.id
    FOR UPDATE OF d SKIP LOCKED
), done AS (
    UPDATE outbox_delivery d SET status = 'done', finished_at = now() FROM claimed c WHERE d.id = c.id
    RETURNING d.id, d.handler, d.queue, d.attempts, d.ordering_key, d.event_id, d.due_at, d.started_at, d.crashes
), inbox AS (
    INSERT INTO outbox_inbox (handler, event_id, handled_at)
    SELECT d.handler, e.event_id, now() FROM done d JOIN outbox_event e ON e.id = d.event_id
    WHERE d.handler <> '{UNKNOWN_TYPE_HANDLER}'
    ON CONFLICT DO NOTHING
    RETURNING handler, event_id
)
SELECT d.id, d.handler, d.queue, 'dispatched', d.attempts, d.ordering_key,
       e.id, e.event_id, e.type, e.version, e.occurred_at, e.aggregate_type, e.aggregate_id,
       e.correlation_id, e.causation_id, e.traceparent, e.payload::text,
       d.handler <> '{UNKNOWN_TYPE_HANDLER}' AND i.handler IS NULL,
       d.due_at, NULL::timestamptz, d.started_at, d.crashes,
       i.handler IS NOT NULL
FROM done d JOIN outbox_event e ON e.id = d.event_id
LEFT JOIN inbox i ON i.handler = d.handler AND i.event_id = e.event_id
ORDER BY d.id
"""


WAITING_CLAIM_SQL = "SET LOCAL lock_timeout = '3s';" + CLAIM_SQL.replace("SKIP LOCKED", "")


def claim(
    delivery_ids: list[int], *, started_at: datetime | None, wait: bool = False, finish: bool = False
) -> list[Delivery]:
    """Lock the deliveries this runner started at ``started_at``, with their events.

    Rows another transaction holds are skipped, or with ``wait`` waited for
    (up to 3 s, then ``OperationalError``). With ``finish``, also mark them
    done and write their inbox rows (see CLAIM_AND_FINISH_SQL): each comes
    back with ``finished_in_advance`` and ``inbox_in_advance`` set.
    """
    params = {"ids": delivery_ids, "started_at": started_at}
    if finish:
        return [_delivery(row) for row in prepared(CLAIM_AND_FINISH_SQL, params)]
    if not wait:
        return [_delivery(row) for row in prepared(CLAIM_SQL, params)]
    with connection.cursor() as cursor:
        cursor.execute(WAITING_CLAIM_SQL, params)
        cursor.nextset()  # past the SET
        return [_delivery(row) for row in cursor.fetchall()]


def _delivery(row: tuple) -> Delivery:
    event = OutboxEvent(
        id=row[6],
        event_id=row[7],
        type=row[8],
        version=row[9],
        occurred_at=row[10],
        aggregate_type=row[11],
        aggregate_id=row[12],
        correlation_id=row[13],
        causation_id=row[14],
        traceparent=row[15],
        payload=json.loads(row[16]),
    )
    delivery = Delivery(
        id=row[0],
        event=event,
        handler=row[1],
        queue=row[2],
        status=row[3],
        attempts=row[4],
        ordering_key=row[5],
        due_at=row[18],
        finished_at=row[19],
        started_at=row[20],
        crashes=row[21],
    )
    delivery.already_handled = row[17]
    delivery.finished_in_advance = len(row) > 22
    delivery.inbox_in_advance = len(row) > 22 and row[22]
    for instance in (event, delivery):
        instance._state.adding, instance._state.db = False, "default"
    return delivery


FINISH_SQL = """
WITH done AS (
    UPDATE outbox_delivery SET status = 'done', finished_at = now() WHERE id = ANY(%(ids)s)
)
INSERT INTO outbox_inbox (handler, event_id, handled_at)
SELECT handler, event_id, now() FROM unnest(%(handlers)s::text[], %(event_ids)s::uuid[]) AS i(handler, event_id)
"""


def drop_inbox(inbox: list[tuple[str, Any]]) -> None:
    """Delete the inbox rows a claim wrote in advance for deliveries that did not succeed after all."""
    prepared(
        "DELETE FROM outbox_inbox i USING unnest(%(handlers)s::text[], %(event_ids)s::uuid[]) AS x(handler, event_id) "
        "WHERE i.handler = x.handler AND i.event_id = x.event_id",
        {"handlers": [handler for handler, _ in inbox], "event_ids": [event_id for _, event_id in inbox]},
    )


def finish(*, delivery_ids: list[int], inbox: list[tuple[str, Any]]) -> None:
    """Mark the deliveries done and write their inbox rows, in one statement."""
    params = {
        "ids": delivery_ids,
        "handlers": [handler for handler, _ in inbox],
        "event_ids": [event_id for _, event_id in inbox],
    }
    prepared(FINISH_SQL, params)
