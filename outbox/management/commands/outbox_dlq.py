from django.core.management.base import BaseCommand, CommandError

from outbox.models import Delivery
from outbox.selectors import dead_letters
from outbox.services import dead_letter_retry


class Command(BaseCommand):
    help = "List the dead-letter queue, or send dead deliveries round again."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="List dead deliveries with their last error.")
        listing.add_argument("--handler")
        retry = sub.add_parser("retry", help="Retry dead deliveries: one, one handler's, or all.")
        which = retry.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", type=int, dest="delivery_id")
        which.add_argument("--handler")
        which.add_argument("--all", action="store_true")

    def handle(self, *args, action: str, **options) -> None:
        if action == "list":
            self._list(options.get("handler"))
        else:
            self._retry(options)

    def _list(self, handler: str | None) -> None:
        rows = dead_letters(handler=handler)
        for d in rows:
            error = d.last_error.splitlines()[0] if d.last_error else ""
            self.stdout.write(f"{d.id:>8}  {d.handler:<40} {d.event.type:<35} attempts={d.attempts}  {error}")
        self.stdout.write(f"{rows.count()} dead deliveries")

    def _retry(self, options: dict) -> None:
        if options["delivery_id"] is not None:
            if not Delivery.objects.filter(id=options["delivery_id"], status=Delivery.Status.DEAD).exists():
                raise CommandError(f"Delivery {options['delivery_id']} is not a dead letter.")
            queryset = Delivery.objects.filter(id=options["delivery_id"])
        else:
            queryset = dead_letters(handler=options["handler"] if not options["all"] else None)
        count = dead_letter_retry(deliveries=queryset)
        self.stdout.write(f"{count} dead deliveries sent round again")
