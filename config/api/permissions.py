"""Who may use a route: Django's model permissions, the same the admin asks for; staff status alone grants nothing.

``is_staff`` only lets someone into the admin site. A route for staff names
the permission it needs (``has_perm("outbox.view_delivery", message=...)``),
and a superuser holds every permission.
"""

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


def has_perm(*perms: str, message: str) -> type[BasePermission]:
    """A permission class that requires one of ``perms``: ``has_perm("outbox.retry_delivery", message="...")``.

    ``message`` is the 403's ``detail``: name the permission, so whoever is
    refused knows what to ask for.
    """
    if not perms:
        raise ValueError("has_perm needs at least one permission.")

    refusal = message

    class HasPerm(BasePermission):
        message = refusal

        def has_permission(self, request: Request, view: object) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and any(user.has_perm(perm) for perm in perms))

    HasPerm.__name__ = HasPerm.__qualname__ = f"HasPerm_{'_or_'.join(p.replace('.', '_') for p in perms)}"
    return HasPerm
