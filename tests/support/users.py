"""Users for tests of who may do what: customers, staff, staff with given permissions."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

PASSWORD = "correct-horse-battery"


def make_user(username: str, *, staff: bool = False, perms: tuple[str, ...] = (), **fields):
    """A user with ``PASSWORD``; ``perms`` as ``"app_label.codename"``."""
    user = get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=staff, **fields)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def token_client(user=None, *, key: str | None = None) -> APIClient:
    """An API client sending ``Authorization: Token <key>``: the user's real token, or ``key`` as given."""
    client = APIClient()
    if user is not None:
        key = Token.objects.get_or_create(user=user)[0].key
    if key is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client
