import math
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from outbox.services import finished_work_prune

MAX_DAYS = 36_500  # a century: older than any row, and still a date when counted back from now


class Command(BaseCommand):
    help = "Delete done deliveries and inbox rows older than --days. Events are never deleted."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, default=30.0)

    def handle(self, *args, days: float, **options) -> None:
        if not (math.isfinite(days) and 0 <= days <= MAX_DAYS):
            raise CommandError(f"--days must be a number of days from 0 to {MAX_DAYS}, not {days:g}.", returncode=2)
        deliveries, inbox = finished_work_prune(older_than=timedelta(days=days))
        self.stdout.write(f"pruned {deliveries} done deliveries and {inbox} inbox rows older than {days} days")
