"""Load demo data: idempotent, so `make run` can call it every time.

The project's, as it spans contexts: it makes the demo users itself and has
each context seed what it owns through its own services (the catalogue:
:func:`inventory.demo.seed_catalogue`). It creates a superuser with a password
printed here and in the README, so it runs only with DEBUG on (a developer's
machine); anything else that needs the catalogue (the benchmarks) calls
:func:`inventory.demo.seed_catalogue` and makes its own users.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inventory.demo import CATALOGUE, seed_catalogue

DEMO_USERS = [
    # username, password, is_staff
    ("customer", "customer-demo-pass", False),
    ("staff", "staff-demo-pass", True),
]


class Command(BaseCommand):
    help = "Create the demo customer and staff users and the shop's catalogue. Idempotent."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates a superuser with a known password, so it runs only with DEBUG on "
                "(config.settings.local on a developer's machine); create real users with "
                "`manage.py createsuperuser`.",
                returncode=2,
            )
        for username, password, is_staff in DEMO_USERS:
            self._user(username, password, is_staff)
            self.stdout.write(f"  {'staff' if is_staff else 'customer'} sign-in: {username} / {password}")
        seed_catalogue()
        self.stdout.write(f"  catalogue: {len(CATALOGUE)} products (payment tokens: tok_visa, tok_decline, tok_flaky)")

    def _user(self, username: str, password: str, is_staff: bool) -> None:
        user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": is_staff})
        if created:
            user.set_password(password)
            user.email = f"{username}@shop.example"
            user.save()
        if is_staff:
            user.is_superuser = True
            user.save(update_fields=["is_superuser"])
            user.user_permissions.add(*Permission.objects.filter(codename="retry_delivery"))
