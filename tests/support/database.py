"""The test database's connections by who holds them, a fault that drops them, and a fingerprint of its rows.

Every process ``tests.support.system.System`` starts names its connections
(``PGAPPNAME``: ``oms-web``, ``oms-worker-1``, ``oms-relay``...), so a fault
drops exactly one role's connections, as a database failover or a
connection-killing proxy would, and leaves the test's own alone::

    terminated = terminate_connections("oms-worker")   # both workers' connections
    assert terminated > 0
"""

from django.db import connection, connections


def backends(application_name_prefix: str) -> list[tuple[int, str]]:
    """``(pid, application_name)`` of the test database's connections whose name starts with the prefix."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND starts_with(application_name, %s)"
            " ORDER BY pid",
            [application_name_prefix],
        )
        return [(pid, name) for pid, name in cursor.fetchall()]


def terminate_connections(application_name_prefix: str, *, wait_seconds: float = 5.0) -> int:
    """``pg_terminate_backend`` every connection whose ``application_name`` starts with the prefix.

    Returns how many were terminated: each backend has exited when it returns
    (waited for up to ``wait_seconds``). Its client sees the failure at its next
    statement, or mid-statement if it was busy.
    """
    assert application_name_prefix, "an empty prefix would terminate every connection but the test's"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND starts_with(application_name, %s)",
            [int(wait_seconds * 1000), application_name_prefix],
        )
        return cursor.fetchone()[0]


def terminate_connection_of(alias: str) -> None:
    """Terminate this process's own connection ``alias``, from the default one, as a failover would."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        [pid] = cursor.fetchone()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def every_table() -> dict[str, tuple[int, str]]:
    """Each table's row count and the md5 of all its rows: any insert, update or delete shows.

    For tests' small tables: it reads every row of every table.
    """
    tables = connection.introspection.table_names()
    quote_name = connection.ops.quote_name
    sql = " UNION ALL ".join(
        f"SELECT %s, count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {quote_name(name)} t"
        for name in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, tables)
        return {name: (count, digest) for name, count, digest in cursor.fetchall()}
