"""Project middleware: a database or cache that drops the connection mid-request answers 503, not 500; refusals
are logged."""

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from redis.exceptions import RedisError

from config import security
from config.api.errors import is_service_unavailable, service_unavailable

logger = logging.getLogger(__name__)


class ServiceUnavailableMiddleware:
    """A view that lost its database or cache connection (dropped, refused, broken) answers 503 with ``Retry-After``.

    For pages and API alike: DRF hands back to Django every error that is not
    a client's, and this catches Django's ``OperationalError`` and
    ``InterfaceError``, and redis-py's errors (a sign-in counts its failures
    in the cache), there. The client may retry: Django replaces an unusable
    connection at the end of the request. Errors outside any view get the
    same answer from ``handler500`` (:func:`config.api.errors.server_error`).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_service_unavailable(exception):
            return None
        logger.warning("%s unavailable during %s %s: %s", _which(exception), request.method, request.path, exception)
        return service_unavailable(request)


def _which(exception: Exception) -> str:
    return "cache" if isinstance(exception, RedisError) else "database"


class SecurityLogMiddleware:
    """Log every refusal, whoever answered it, to the security log (:mod:`config.security`).

    401 (no or a bad token), 403 (a DRF or Django ``PermissionDenied``, the
    admin's, a CSRF failure) and 429 (a throttle, a sign-in lockout): seen
    here as the response leaves, so that no view needs to remember to log.
    """

    LOGGED = frozenset({401, 403, 429})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code in self.LOGGED:
            data = getattr(response, "data", None)  # DRF's answers carry their error code
            code = data.get("code", "") if isinstance(data, dict) else ""
            security.log_refusal(request, response.status_code, code=str(code))
        return response
