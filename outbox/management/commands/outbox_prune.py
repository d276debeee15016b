import math
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from outbox.checks import MAX_DAYS
from outbox.conf import outbox_setting
from outbox.retention import finished_work_prune


class Command(BaseCommand):
    help = (
        "Delete done deliveries and inbox rows older than --days (inbox rows: never inside the inbox window), and "
        "resolved dead letters older than OUTBOX_RETENTION_RESOLVED_DAYS, in short batches. Beat runs the same "
        "prune every OUTBOX_PRUNE_EVERY_SECONDS. Events are never deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, default=outbox_setting("RETENTION_DONE_DAYS"))

    def handle(self, *args, days: float, **options) -> None:
        if not (math.isfinite(days) and 0 <= days <= MAX_DAYS):
            raise CommandError(f"--days must be a number of days from 0 to {MAX_DAYS}, not {days:g}.", returncode=2)
        report = finished_work_prune(older_than=timedelta(days=days))
        if report.skipped:
            raise CommandError("Another process is pruning now (beat's outbox.prune?); nothing done. Try again later.")
        self.stdout.write(
            f"pruned {report.deliveries} done deliveries and {report.inbox} inbox rows older than {days:g} days, "
            f"and {report.resolved} resolved dead letters, in {report.batches} batches "
            f"(longest {report.longest_batch * 1000:.0f} ms)"
        )
