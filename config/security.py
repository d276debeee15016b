"""The security log: one JSON line per failed sign-in, throttled or locked-out request, and refusal.

Every line names the event, our request id (and the client's, if it sent
one), the user (their id, or none: anonymous), the client's address
as the throttles count it (:func:`client_address`) and the path. A line never
holds a password, a token or a request body: a failed sign-in names the
username tried, nothing else of what was sent.

The logger is ``security``; its handler formats JSON whatever ``LOG_FORMAT``
says (config/settings/base.py, LOGGING), and Sentry leaves it alone
(config/sentry.py).
"""

import logging
from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("security")


def client_address(request: HttpRequest) -> str:
    """The client's address: ``REMOTE_ADDR``, or behind ``NUM_PROXIES`` trusted proxies the one the nearest saw.

    DRF's own reading (``BaseThrottle.get_ident`` with ``REST_FRAMEWORK["NUM_PROXIES"]``), so that the
    API throttles, the sign-in lockout (django-axes) and the log count the same address: with no proxy
    declared, ``X-Forwarded-For`` is ignored and cannot be forged into a fresh bucket.
    """
    # DRF's throttles read only META (the stubs ask for DRF's Request, which wraps this one).
    return BaseThrottle().get_ident(request) or ""  # type: ignore[arg-type]


def log_event(event: str, request: Any, *, level: int = logging.WARNING, **fields: Any) -> None:
    """Log ``event`` about ``request`` (Django's or DRF's) as one structured line; ``fields`` add to it."""
    user = getattr(request, "user", None)
    signed_in = user is not None and bool(user.is_authenticated)
    record = {
        "event": event,
        "request_id": str(getattr(request, "request_id", "") or ""),
        "client_request_id": getattr(request, "client_request_id", ""),
        # Not the username: an id says who, without personal data.
        "user_id": user.pk if user is not None and signed_in else None,
        "client_address": client_address(request),
        "method": request.method,
        "path": request.path,
        **fields,
    }
    logger.log(level, event, extra=record)


@receiver(user_login_failed, dispatch_uid="security-log-sign-in-failed")
def _sign_in_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """A wrong username or password, or a locked-out client, at any door: the API token, the shop, the admin."""
    if request is None:  # authenticate() called outside a request: nothing to attribute it to
        return
    tried = credentials.get("username")
    log_event("sign_in_failed", request, attempted_username=tried if isinstance(tried, str) else "")


def log_refusal(request: HttpRequest, status: int, code: str = "") -> None:
    """A response that refused the request: 401 (bad or no credentials), 403 (no permission), 429 (throttled)."""
    if status == 429:
        event = "locked_out" if getattr(request, "axes_locked_out", False) else "throttled"
    elif status == 401:
        event = "not_authenticated"
    else:
        event = "permission_denied"
    log_event(event, request, status=status, code=code)
