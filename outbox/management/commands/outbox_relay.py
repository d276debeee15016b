"""A long-running relay: the lowest-latency way to run the outbox.

It fans out at once when PostgreSQL NOTIFYs a new unrelayed event (a trigger
on the outbox table sends it at commit), and sweeps for due deliveries at once
when ``publish`` NOTIFYs that it created deliveries that wait for the relay
(an ordered or held-back handler's); every ``--poll-seconds`` it also sweeps:
retries, expired leases, ordered events released. Any number may run
at once: they claim work with SKIP LOCKED. Beat's sweep stays the backstop.
"""

import logging
import math
import signal
import threading
import time

import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, connection
from django.dispatch import Signal

from outbox.conf import outbox_setting
from outbox.relay import relay_pass

CHANNEL = "outbox_event"
HELD = "held"  # the payload publish sends when it created deliveries that wait for a relay pass
# A pass that found this many events means load: wait RELAY_COALESCE_SECONDS
# before the next, so batches fill (measured in bench/outbox_bench.py throughput).
COALESCE_FROM = 5
# Polling less often than this leaves retries and expired leases to beat's sweep alone.
MAX_POLL_SECONDS = 3600
logger = logging.getLogger(__name__)
# Sent (sender: the command class) as a long-running relay starts, before it says it is ready: a project
# connects what it runs beside the relay, e.g. an endpoint serving the host's metrics.
relay_started = Signal()


class Command(BaseCommand):
    help = "Relay outbox events continuously (LISTEN/NOTIFY on PostgreSQL, polling elsewhere)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll-seconds", type=float, default=outbox_setting("RELAY_POLL_SECONDS"))
        parser.add_argument("--once", action="store_true", help="Run one relay pass and exit.")

    def handle(self, *args, poll_seconds: float, once: bool, **options) -> None:
        if not (math.isfinite(poll_seconds) and 0 < poll_seconds <= MAX_POLL_SECONDS):
            raise CommandError(
                f"--poll-seconds (default OUTBOX_RELAY_POLL_SECONDS) must be a number of seconds above 0 and at most "
                f"{MAX_POLL_SECONDS}, not {poll_seconds:g}.",
                returncode=2,
            )
        if once:
            self._report(relay_pass())
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        listens = connection.vendor == "postgresql"
        listener = _listen() if listens else None
        relay_started.send(sender=type(self))
        self.stdout.write(f"outbox relay: {'LISTEN ' + CHANNEL if listens else 'polling'}, poll every {poll_seconds}s")
        last_sweep, woken_for = 0.0, set[str]()
        try:
            while not stop.is_set():
                sweep = HELD in woken_for or time.monotonic() - last_sweep >= poll_seconds
                relayed = _relay_keeping_the_connection(sweep=sweep)
                if sweep:
                    last_sweep = time.monotonic()
                if relayed >= COALESCE_FROM:
                    # Busy: let the next events gather, so they travel in fewer, fuller tasks.
                    stop.wait(outbox_setting("RELAY_COALESCE_SECONDS"))
                if listens and listener is None:
                    listener = _listen()
                listener, woken_for = _wait(listener, poll_seconds, stop)
        finally:
            if listener is not None:
                listener.close()
        self.stdout.write("outbox relay: stopped")

    def _report(self, stats) -> None:
        self.stdout.write(f"fanned out {stats.fanned_out} events, dispatched {stats.dispatched}, dead {stats.dead}")


def _relay_keeping_the_connection(*, sweep: bool) -> int:
    """One pass on the connection of the last one: reconnecting would cost more than the pass.

    A connection the database dropped is closed here and opened afresh by the
    next pass. Returns how many events the pass fanned out.
    """
    try:
        return relay_pass(sweep=sweep).fanned_out
    except (OperationalError, InterfaceError):
        logger.warning("outbox relay: database connection lost; reconnecting", exc_info=True)
        connection.close()
        return 0


def _listen() -> psycopg.Connection | None:
    """A connection LISTENing for new events, or None (and polling) while the database is away."""
    params = settings.DATABASES["default"]
    try:
        conn = psycopg.connect(
            dbname=params["NAME"],
            user=params.get("USER") or None,
            password=params.get("PASSWORD") or None,
            host=params.get("HOST") or None,
            port=params.get("PORT") or None,
            autocommit=True,
        )
        conn.execute(f"LISTEN {CHANNEL}")
    except psycopg.OperationalError:
        logger.warning("outbox relay: cannot LISTEN; polling until the database is back", exc_info=True)
        return None
    return conn


def _wait(
    listener: psycopg.Connection | None, seconds: float, stop: threading.Event
) -> tuple[psycopg.Connection | None, set[str]]:
    """Return on the first notification, or after ``seconds``: the listener still usable, and the payloads."""
    if listener is None:
        stop.wait(seconds)
        return None, set()
    try:
        payloads = {n.payload for n in listener.notifies(timeout=seconds, stop_after=1)}
        payloads |= {n.payload for n in listener.notifies(timeout=0)}  # any that came with it
    except psycopg.OperationalError:
        logger.warning("outbox relay: lost the LISTEN connection", exc_info=True)
        listener.close()
        stop.wait(seconds)
        return None, set()
    return listener, payloads
