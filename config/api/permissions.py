from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class IsStaff(BasePermission):
    message = "Only staff may use this route."

    def has_permission(self, request: Request, view: object) -> bool:
        return bool(request.user and request.user.is_active and request.user.is_staff)


def has_perm(perm: str, message: str) -> type[BasePermission]:
    """A permission class that requires one Django permission: ``has_perm("outbox.retry_delivery", "...")``."""

    class HasPerm(BasePermission):
        def has_permission(self, request: Request, view: object) -> bool:
            return bool(request.user and request.user.has_perm(perm))

    HasPerm.message = message
    HasPerm.__name__ = HasPerm.__qualname__ = f"HasPerm_{perm.replace('.', '_')}"
    return HasPerm
