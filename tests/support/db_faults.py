"""Real database faults for in-process requests: the request's own PostgreSQL connection, dropped at a chosen point.

The connection is terminated from a second connection with
``pg_terminate_backend``, as a failover, a restart of PostgreSQL or an idle
connection killer would do it, and the helper waits until the backend has
exited, so whatever the request does with the connection next really fails.

The requests of Django's test client run in the test's thread, on the test's
connection: use these with ``django_db(transaction=True)``, so the request's
transaction is a real one that commits (and nothing of the test is lost when
its connection goes).
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from django.db import connection, transaction

from tests.support.processes import wait_for

WRITES = ("INSERT", "UPDATE", "DELETE")


def admin_connection() -> psycopg.Connection:
    """A second connection to the test database, outside Django."""
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"] or None, host=db["HOST"] or None, port=db["PORT"] or None, autocommit=True
    )


def terminate_backend(pid: int) -> None:
    """Drop backend ``pid``'s connection, and return once PostgreSQL has let it go."""
    with admin_connection() as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        wait_for(
            lambda: admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone() is None,
            timeout=10,
            what=f"backend {pid} to exit",
        )


@dataclass
class Fault:
    """What a fault hit: the statements that set it off, and the backends it dropped (so a test can tell it fired)."""

    hit: list[str] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)

    def drop_this_connection(self) -> None:
        """Terminate the backend of this thread's Django connection (the request's, for an in-process request)."""
        pid = connection.connection.info.backend_pid
        terminate_backend(pid)
        self.dropped.append(pid)


def _forget_dropped(fault: Fault) -> None:
    """Close the dropped connection, as Django does at the end of a real request (the test client does not)."""
    if fault.dropped:
        connection.close()


@contextlib.contextmanager
def connection_dropped_at(statement: str) -> Iterator[Fault]:
    """Drop the connection just before the first query that starts with ``statement``: that query then fails."""
    fault = Fault()

    def wrapper(execute, sql, params, many, context):
        if not fault.hit and sql.startswith(statement):
            fault.hit.append(sql)
            fault.drop_this_connection()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield fault
    _forget_dropped(fault)


@contextlib.contextmanager
def connection_dropped_once_committed() -> Iterator[Fault]:
    """Drop the connection as soon as the transaction of the first write made through it commits.

    The drop is an on-commit callback registered at that write, inside the
    transaction: whatever the request does after its commit finds the
    database gone.
    """
    fault = Fault()

    def wrapper(execute, sql, params, many, context):
        if not fault.hit and sql.startswith(WRITES):
            assert connection.in_atomic_block, f"a write outside any transaction: {sql[:80]}"
            fault.hit.append(sql)
            transaction.on_commit(fault.drop_this_connection)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield fault
    _forget_dropped(fault)
