"""The relay kick's flag: after a commit that published, wake the relay once, whatever the burst.

The coalescing flag is a one-row table (:class:`~outbox.models.RelayWakeup`),
not a cache key, so every process sees the same flag whatever cache backend
the deployment has (a per-process cache made each process's flag its own:
after its first kick, a process's commits went unkicked until the flag
expired, and each hop of a flow waited for beat's sweep).

* A kick reads the flag, and if it is clear (or stale) sets it in one short
  autocommit statement, sending a relay task only if that statement set it.
* The relay task clears it as it starts, before it claims: a commit after
  that point kicks again, a commit before it is seen by this run. So a burst
  of 1,000 commits queues a handful of runs, not 1,000.
* A flag whose run never started (the broker lost it) is stale after
  ``STALE_SECONDS`` and the next commit kicks again; beat's sweep covers
  meanwhile. A failed send clears it at once, best effort.

The kick itself (sending the relay task) is :func:`outbox.dispatch.kick_relay`.

Losing the flag costs only coalescing, never a relay run, so on PostgreSQL
its writes skip the wait for the WAL flush (``synchronous_commit = off``).
"""

from django.db import connections

STALE_SECONDS = 5.0  # a kicked run not started by then was lost; the sweep covered it long before
TABLE = "outbox_relay_wakeup"
DATABASE = "default"  # where the relay claims (outbox.relay), so where its flag is


def clear_flag() -> None:
    """Clear the flag: the next commit kicks again (raises what the database raises)."""
    with connections[DATABASE].cursor() as cursor:
        cursor.execute(_SQL[_vendor()]["clear"])


def set_flag() -> bool:
    """Set the flag if it is clear or stale; True if this call set it.

    A flag that is held is only read: no write lock (SQLite's single writer)
    and no row lock (PostgreSQL), however many commits a second kick. Setting it
    is an upsert, so a missing row (a flushed table) is made, not read as "held",
    and of two processes that both read it clear only one sets it.
    """
    sql = _SQL[_vendor()]
    with connections[DATABASE].cursor() as cursor:
        cursor.execute(sql["held"])
        if cursor.fetchone():
            return False
        cursor.execute(sql["set"])
        return cursor.rowcount > 0


def _vendor() -> str:
    return "postgresql" if connections[DATABASE].vendor == "postgresql" else "sqlite"


_SQL = {
    "postgresql": {
        "held": f"SELECT 1 FROM {TABLE} WHERE id = 1 AND queued_at >= now() - interval '{STALE_SECONDS} seconds'",
        "set": (
            f"INSERT INTO {TABLE} AS w (id, queued_at) "
            "SELECT 1, now() FROM (SELECT set_config('synchronous_commit', 'off', true)) AS no_flush_wait "
            "ON CONFLICT (id) DO UPDATE SET queued_at = EXCLUDED.queued_at "
            f"WHERE w.queued_at IS NULL OR w.queued_at < now() - interval '{STALE_SECONDS} seconds'"
        ),
        "clear": (
            f"WITH no_flush_wait AS (SELECT set_config('synchronous_commit', 'off', true) AS s) "
            f"UPDATE {TABLE} SET queued_at = NULL FROM no_flush_wait "
            "WHERE id = 1 AND queued_at IS NOT NULL AND no_flush_wait.s IS NOT NULL"
        ),
    },
    # Django stores SQLite datetimes as UTC text that sorts as it reads: compare them so.
    "sqlite": {
        "held": (
            f"SELECT 1 FROM {TABLE} "
            f"WHERE id = 1 AND queued_at >= strftime('%Y-%m-%d %H:%M:%f', 'now', '-{STALE_SECONDS} seconds')"
        ),
        "set": (
            f"INSERT INTO {TABLE} (id, queued_at) VALUES (1, strftime('%Y-%m-%d %H:%M:%f', 'now')) "
            "ON CONFLICT (id) DO UPDATE SET queued_at = excluded.queued_at "
            f"WHERE queued_at IS NULL OR queued_at < strftime('%Y-%m-%d %H:%M:%f', 'now', '-{STALE_SECONDS} seconds')"
        ),
        "clear": f"UPDATE {TABLE} SET queued_at = NULL WHERE id = 1 AND queued_at IS NOT NULL",
    },
}
