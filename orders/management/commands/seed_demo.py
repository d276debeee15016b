"""Load demo data: idempotent, so `make run` can call it every time."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_USERS = [
    # username, password, is_staff
    ("customer", "customer-demo-pass", False),
    ("staff", "staff-demo-pass", True),
]


class Command(BaseCommand):
    help = "Create the demo customer and staff users (and, with the shop, its catalogue). Idempotent."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        for username, password, is_staff in DEMO_USERS:
            self._user(username, password, is_staff)
            self.stdout.write(f"  {'staff' if is_staff else 'customer'} sign-in: {username} / {password}")

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
