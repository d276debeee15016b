"""Load demo data: idempotent, so `make run` can call it every time.

It creates a superuser with a password printed here and in the README, so it
runs only with DEBUG on (a developer's machine); anything else that needs the
catalogue (the benchmarks) calls :func:`seed_catalogue` and makes its own users.
"""

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inventory.services import product_ensure

DEMO_USERS = [
    # username, password, is_staff
    ("customer", "customer-demo-pass", False),
    ("staff", "staff-demo-pass", True),
]

# sku, name, price (EUR), units on hand: from pocket money to a month's rent,
# with one SKU that never runs out and one that runs out after five orders.
CATALOGUE = [
    ("PEN-BLUE", "Blue ballpoint pen", "1.20", 10_000),
    ("NOTEBOOK-A5", "A5 notebook, dotted", "6.50", 500),
    ("MUG-CERAMIC", "Ceramic mug, 350 ml", "12.90", 120),
    ("LAMP-DESK", "LED desk lamp", "39.00", 60),
    ("KEYBOARD-MECH", "Mechanical keyboard", "119.00", 40),
    ("HEADPHONES-NC", "Noise-cancelling headphones", "249.00", 25),
    ("CHAIR-ERGO", "Ergonomic office chair", "489.00", 12),
    ("LAPTOP-14", "14-inch laptop", "1299.00", 5),
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


def seed_catalogue() -> None:
    """The demo catalogue and its opening stock, and nothing else (no user). Idempotent."""
    for sku, name, price, on_hand in CATALOGUE:
        # Through inventory's service: the opening units are received into the SKU's stock stream
        # (inventory.StockReceived); an existing product is left alone, so a second run receives nothing.
        product_ensure(sku=sku, name=name, price=Decimal(price), currency="EUR", on_hand=on_hand)
