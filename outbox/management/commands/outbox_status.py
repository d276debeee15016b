from django.core.management.base import BaseCommand

from outbox.selectors import handler_statuses


class Command(BaseCommand):
    help = "Print, per handler, the pending, dispatched and dead deliveries and the oldest pending age."

    def handle(self, *args, **options) -> None:
        header = f"{'handler':<45} {'pending':>8} {'dispatched':>10} {'dead':>6} {'oldest pending':>15}"
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for row in handler_statuses():
            age = f"{row.oldest_pending_age.total_seconds():.1f}s" if row.oldest_pending_age else "-"
            self.stdout.write(f"{row.handler:<45} {row.pending:>8} {row.dispatched:>10} {row.dead:>6} {age:>15}")
