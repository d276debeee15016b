"""A long-running relay: the lowest-latency way to run the outbox.

It relays at once when PostgreSQL NOTIFYs a new event (a trigger on the
outbox table sends it at commit), and otherwise every ``--poll-seconds``,
which is also what picks up retries and expired leases. Any number may run
at once: they claim work with SKIP LOCKED. Beat's sweep stays the backstop.
"""

import signal
import threading

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from outbox.relay import relay_pass

CHANNEL = "outbox_event"


class Command(BaseCommand):
    help = "Relay outbox events continuously (LISTEN/NOTIFY on PostgreSQL, polling elsewhere)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll-seconds", type=float, default=settings.OUTBOX["RELAY_POLL_SECONDS"])
        parser.add_argument("--once", action="store_true", help="Run one relay pass and exit.")

    def handle(self, *args, poll_seconds: float, once: bool, **options) -> None:
        if once:
            self._report(relay_pass())
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        listener = _listen() if connection.vendor == "postgresql" else None
        self.stdout.write(f"outbox relay: {'LISTEN ' + CHANNEL if listener else 'polling'}, poll every {poll_seconds}s")
        try:
            while not stop.is_set():
                close_old_connections()
                relay_pass()
                _wait(listener, poll_seconds, stop)
        finally:
            if listener is not None:
                listener.close()
        self.stdout.write("outbox relay: stopped")

    def _report(self, stats) -> None:
        self.stdout.write(f"fanned out {stats.fanned_out} events, dispatched {stats.dispatched}, dead {stats.dead}")


def _listen() -> psycopg.Connection:
    params = settings.DATABASES["default"]
    conn = psycopg.connect(
        dbname=params["NAME"],
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        autocommit=True,
    )
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


def _wait(listener: psycopg.Connection | None, seconds: float, stop: threading.Event) -> None:
    """Return on the first notification, or after ``seconds``."""
    if listener is None:
        stop.wait(seconds)
        return
    for _ in listener.notifies(timeout=seconds, stop_after=1):
        pass
