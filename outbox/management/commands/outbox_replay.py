"""``outbox_replay``: deliver past events again to one handler, resumably, beside live traffic (outbox/replay.py)."""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_aware, make_aware
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from outbox.models import ReplayProgress
from outbox.replay import (
    ReplayRefused,
    ReplayScope,
    history_scopes,
    replay_dead,
    replay_outstanding,
    replay_plan,
    replay_scope,
    replay_start,
    replay_step,
    replay_total,
)

USAGE = 2  # the exit status of a command given something it cannot act on; nothing was changed
INTERRUPTED = 130  # as a shell reports a process stopped by Ctrl-C
POLL_SECONDS = 0.1  # how often the window and the progress are looked at while waiting for workers
STALL_SECONDS = 30.0  # no replayed delivery finished for this long: say what may be missing
LIMITS = {"batch_size": (1, 10_000), "window": (1, 1_000_000)}


class Command(BaseCommand):
    help = (
        "Deliver past events again to one handler (its deliveries are created in batches on its replay queue, "
        "<queue>.replay, and delivered by the workers consuming it). Resumable: run the same command again after "
        "Ctrl-C or a crash and it goes on where it stopped; a second run delivers nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--handler", help="The handler's name, e.g. notifications.mail_order_confirmed.")
        which.add_argument(
            "--history",
            action="store_true",
            help="For every subscription that declares history_from: deliver that history to it, once.",
        )
        parser.add_argument("--since", help="Only events that occurred at or after this ISO 8601 time (UTC if naive).")
        parser.add_argument("--until", help="Only events that occurred before this ISO 8601 time (UTC if naive).")
        parser.add_argument("--type", dest="event_type", help="Only events of this type (the handler's own).")
        parser.add_argument("--aggregate", help="Only events of this aggregate id (an order's id, a SKU).")
        parser.add_argument("--queue", help="The Celery queue of the replayed deliveries (default <queue>.replay).")
        parser.add_argument(
            "--rebuild",
            action="store_true",
            help="Empty the handler's read model (its subscription's rebuild=) and deliver the whole log again.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be delivered; change nothing.")
        parser.add_argument("--batch-size", type=int, default=500, help="Events per transaction (default 500).")
        parser.add_argument(
            "--window", type=int, default=2000, help="At most this many replayed deliveries unfinished at once."
        )

    def handle(self, *args, **options) -> None:
        _check_limits(options)
        scopes = _history_scopes(options) if options["history"] else [_scope(options)]
        if not scopes:
            self.stdout.write("No subscription declares history_from: there is no history to deliver.")
        if options["dry_run"]:
            for scope in scopes:
                self._plan(scope)
            return
        for scope in scopes:
            try:
                self._replay(scope, batch_size=options["batch_size"], window=options["window"])
            except KeyboardInterrupt:
                raise CommandError(
                    f"Interrupted: the replay to {scope.handler} stopped after its last committed batch. Run the "
                    "same command again to go on from there.",
                    returncode=INTERRUPTED,
                ) from None

    def _plan(self, scope: ReplayScope) -> None:
        matching, to_deliver = replay_plan(scope)
        what = "empty its read model and run again" if scope.rebuild else "create"
        self.stdout.write(
            f"{scope.handler}: {matching} matching events; would {what} {to_deliver} deliveries on queue "
            f"{scope.queue} ({matching - to_deliver} delivered or handled already). Nothing was changed."
        )

    def _replay(self, scope: ReplayScope, *, batch_size: int, window: int) -> None:
        progress = replay_start(scope=scope)
        if scope.history and progress.finished_at is not None and replay_outstanding(scope) == 0:
            self.stdout.write(f"{scope.handler}: its history was delivered already ({progress.created} deliveries).")
            return
        if progress.scanned:
            self.stdout.write(f"{scope.handler}: resuming after event #{progress.cursor} ({progress.scanned} done).")
        with _progress_bar() as bar:
            watch = _Watch(self, scope, progress, bar)
            finished = progress.finished_at is not None
            while not finished:
                watch.until(lambda: replay_outstanding(scope) < window)
                finished = replay_step(scope=scope, progress_id=progress.id, batch_size=batch_size).finished
                watch.show()
            watch.until(lambda: replay_outstanding(scope) == 0)
        progress.refresh_from_db()
        self.stdout.write(
            f"{scope.handler}: replayed {progress.scanned} events, {progress.created} deliveries on queue "
            f"{scope.queue}; {replay_dead(scope)} of that queue's are dead (`outbox_dlq list --handler "
            f"{scope.handler}`)."
        )

    def stall(self, scope: ReplayScope) -> None:
        self.stderr.write(
            f"No replayed delivery of {scope.handler} finished in {STALL_SECONDS:g} s. Is a worker consuming queue "
            f"{scope.queue} (celery -A config worker -Q {scope.queue}), a relay running, and the handler not "
            f"paused (outbox_handler status {scope.handler})? Waiting on."
        )


class _Watch:
    """Waiting for the workers: the bar kept up to date, and a word when nothing moves for a long while."""

    def __init__(self, command: Command, scope: ReplayScope, progress: ReplayProgress, bar: Progress) -> None:
        self.command, self.scope, self.progress_id, self.bar = command, scope, progress.id, bar
        self.task = bar.add_task(
            scope.handler, total=replay_total(progress, scope), completed=_completed(progress, scope)
        )
        self.last_move, self.last_outstanding, self.warned = time.monotonic(), -1, False

    def show(self) -> None:
        self.bar.update(self.task, completed=_completed(ReplayProgress.objects.get(id=self.progress_id), self.scope))

    def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            outstanding = replay_outstanding(self.scope)
            if outstanding != self.last_outstanding:
                self.last_move, self.last_outstanding, self.warned = time.monotonic(), outstanding, False
            elif not self.warned and time.monotonic() - self.last_move > STALL_SECONDS:
                self.command.stall(self.scope)
                self.warned = True
            self.show()
            time.sleep(POLL_SECONDS)


def _completed(progress: ReplayProgress, scope: ReplayScope) -> int:
    """Events done: gone past, less those whose replayed delivery is still under way."""
    return max(0, progress.scanned - replay_outstanding(scope))


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )


def _scope(options: dict) -> ReplayScope:
    try:
        return replay_scope(
            handler=options["handler"],
            event_type=options["event_type"],
            since=_moment(options["since"], "--since"),
            until=_moment(options["until"], "--until"),
            aggregate=_aggregate(options["aggregate"]),
            queue=options["queue"],
            rebuild=options["rebuild"],
        )
    except ReplayRefused as refused:
        raise CommandError(f"{refused} Nothing was changed.", returncode=USAGE) from None


def _history_scopes(options: dict) -> list[ReplayScope]:
    flags = {"since": "--since", "until": "--until", "event_type": "--type", "aggregate": "--aggregate"}
    given = [flag for name, flag in {**flags, "queue": "--queue", "rebuild": "--rebuild"}.items() if options[name]]
    if given:
        raise CommandError(
            f"--history takes no {', '.join(given)}: each subscription declares its own history. Nothing was changed.",
            returncode=USAGE,
        )
    return history_scopes()


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parse_datetime(value)
        day = parse_date(value) if moment is None else None
    except ValueError:
        moment = day = None
    if day is not None:
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise CommandError(
            f"{option} {value!r} is not a date or time: give ISO 8601, e.g. 2026-12-01 or 2026-12-01T09:30:00Z. "
            "Nothing was changed.",
            returncode=USAGE,
        )
    return moment if is_aware(moment) else make_aware(moment, UTC)


def _aggregate(value: str | None) -> str | None:
    if value is not None and not 0 < len(value) <= 100:
        raise CommandError(
            "--aggregate is an aggregate id of 1 to 100 characters. Nothing was changed.", returncode=USAGE
        )
    return value


def _check_limits(options: dict) -> None:
    for name, (low, high) in LIMITS.items():
        if not low <= options[name] <= high:
            flag = f"--{name.replace('_', '-')}"
            raise CommandError(
                f"{flag} is from {low} to {high}, not {options[name]}. Nothing was changed.", returncode=USAGE
            )
