"""``manage.py customer_forget USER``: erase a customer's personal data (the right to be forgotten)."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.services import ForgetRefused, customer_forget


class Command(BaseCommand):
    help = (
        "Forget a customer: destroy the key their personal data in the event log is sealed under, anonymise "
        "their account, and have every context erase what it keeps of them. USER is a username or a user id. "
        "Refused (exit 2) while one of their orders is in flight."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="the customer's username, or their user id")

    def handle(self, *args, user: str, **options) -> None:
        customer_id = _customer_id(user)
        try:
            forgetting = customer_forget(customer_id=customer_id)
        except ForgetRefused as exc:
            raise CommandError(str(exc), returncode=2) from None
        self.stdout.write(
            f"Customer {customer_id} is forgotten ({forgetting.forgotten_at:%Y-%m-%d %H:%M:%S} UTC): their key is "
            "destroyed and each context is erasing what it keeps of them."
        )


def _customer_id(user: str) -> int:
    users = get_user_model().objects
    found = users.filter(username=user).values_list("pk", flat=True).first()
    if found is None and user.isdigit():
        found = users.filter(pk=int(user)).values_list("pk", flat=True).first()
    if found is None:
        raise CommandError(f"No user is named {user!r} or has that id.", returncode=2)
    return found
