from datetime import timedelta

from django.core.management.base import BaseCommand

from outbox.services import finished_work_prune


class Command(BaseCommand):
    help = "Delete done deliveries and inbox rows older than --days. Events are never deleted."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=float, default=30.0)

    def handle(self, *args, days: float, **options) -> None:
        deliveries, inbox = finished_work_prune(older_than=timedelta(days=days))
        self.stdout.write(f"pruned {deliveries} done deliveries and {inbox} inbox rows older than {days} days")
