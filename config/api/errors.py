"""One JSON shape for every error an API client sees, :class:`ErrorSerializer`::

    {"detail": "Invalid input: lines.0.quantity: Ensure this value is greater than or equal to 1.",
     "code": "invalid",
     "errors": {"lines.0.quantity": ["Ensure this value is greater than or equal to 1."]}}

``errors`` (field path -> messages) is present only when the input was invalid.
Views raise DRF exceptions, or :class:`Conflict` for a state conflict, and
:func:`exception_handler` renders them.
"""

import sys
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views import defaults
from redis.exceptions import RedisError
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings


class Conflict(exceptions.APIException):
    """The request is valid but the resource's state forbids it (cancelling a shipped order)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class Unprocessable(exceptions.APIException):
    """The request is well-formed but cannot be done as asked (an idempotency key reused for another request)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request is well-formed but cannot be processed as it is."
    default_code = "unprocessable"


class Unavailable(exceptions.APIException):
    """503: what was asked cannot be answered by this release yet (it will be, later); nothing changed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "This cannot be answered right now; try again later."
    default_code = "unavailable"


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self, limit: int | None = None) -> None:
        limit = limit or settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than the limit of {limit} bytes: send less.")


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    detail = serializers.CharField(help_text="What went wrong, in words a person can act on.")
    code = serializers.CharField(
        help_text="A stable machine-readable code: invalid, parse_error, not_authenticated, "
        "authentication_failed, permission_denied, not_found, conflict, idempotency_key_reused, request_too_large, "
        "throttled, service_unavailable, ..."
    )

    class Meta:
        ref_name = "Error"


class InvalidInputSerializer(ErrorSerializer):
    """A 400: the error, and for invalid fields the messages of each (absent when the body is not JSON)."""

    # A declared field: DRF's metaclass takes it off the class, so the serializer's own ``errors`` property stays.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="The messages for each invalid field, keyed by its path "
        "(`lines.0.quantity`; `non_field_errors` for the input as a whole).",
    )

    class Meta:
        ref_name = "InvalidInput"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, with every error rendered as :class:`ErrorSerializer`.

    Anything that is not a client error (a bug) is left to Django, whose
    ``handler500`` (:func:`server_error`) answers JSON under ``/api/``.
    """
    from rest_framework.views import exception_handler as drf_exception_handler

    exc = as_api_exception(exc)
    response = drf_exception_handler(exc, context)  # sets WWW-Authenticate and Retry-After, rolls back
    if response is not None and isinstance(exc, exceptions.APIException):  # DRF answers only these (after ours)
        response.data = error_body(exc)
    return response


def as_api_exception(exc: Exception) -> Exception:
    """Django's client-error exceptions as their DRF equivalents; anything else unchanged."""
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLarge()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return exceptions.ParseError(str(exc))
    return exc


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    if isinstance(exc.detail, dict | list):
        messages = list(_flatten(exc.detail))
        return {"detail": _summary(messages), "code": exc.default_code, "errors": _group(messages)}
    return {"detail": str(exc.detail), "code": getattr(exc.detail, "code", None) or exc.default_code}


def _flatten(detail: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """``{"lines": [{}, {"quantity": ["..."]}]}`` -> ``("lines.1.quantity", "...")``."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _flatten(value, f"{path}.{key}" if path else str(key))
    elif isinstance(detail, list) and all(isinstance(item, str) for item in detail):
        for message in detail:
            yield path or api_settings.NON_FIELD_ERRORS_KEY, message
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            yield from _flatten(item, f"{path}.{index}" if path else str(index))
    else:
        yield path or api_settings.NON_FIELD_ERRORS_KEY, detail


def _group(messages: list[tuple[str, Any]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for path, message in messages:
        grouped.setdefault(path, []).append(str(message))
    return grouped


def _summary(messages: list[tuple[str, Any]]) -> str:
    if not messages:
        return "Invalid input."
    path, message = messages[0]
    first = str(message) if path == api_settings.NON_FIELD_ERRORS_KEY else f"Invalid input: {path}: {message}"
    more = len(messages) - 1
    return f"{first} (and {more} more: see errors)" if more else first


# Django's error handlers (config/urls.py): for what fails before or outside a DRF view.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: JSON for an unknown URL under ``/api/``, Django's page elsewhere."""
    if _is_api(request):
        body = {"detail": f"There is no API route {request.path}: see /api/docs/.", "code": "not_found"}
        return JsonResponse(body, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refused before any view (a bad Host header, an oversized form)."""
    if _is_api(request):
        api_exc = as_api_exception(exception)
        if isinstance(api_exc, exceptions.APIException):
            return JsonResponse(error_body(api_exc), status=api_exc.status_code)
        return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
    return defaults.bad_request(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a bug. The client learns only that it is not their fault.

    Unless the database dropped or refused the connection (outside a view, so
    that :class:`config.middleware.ServiceUnavailableMiddleware` did not see
    it, e.g. saving the session): that is a 503 to retry, not a bug.
    """
    if is_service_unavailable(sys.exc_info()[1]):
        return service_unavailable(request)
    if _is_api(request):
        body = {"detail": "Internal server error: the fault is ours and has been logged.", "code": "server_error"}
        return JsonResponse(body, status=500)
    return defaults.server_error(request)


# The database dropped or refused the connection: a moment's outage, not a bug.

RETRY_AFTER_SECONDS = 2  # a dropped connection is replaced on the next request; a failover takes a few seconds
UNAVAILABLE_DETAIL = (
    f"The service could not reach its database: retry after {RETRY_AFTER_SECONDS} seconds (Retry-After). "
    "Retrying is safe: confirming an order again, or placing it again with the same Idempotency-Key, "
    "never does anything twice."
)
UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Back in a moment</title></head>
<body><h1>Back in a moment</h1>
<p>The shop could not reach its database just now. Please try again in a few seconds.</p>
<p>If you had just placed, confirmed or cancelled an order, look at <a href="{orders}">your orders</a>
first: they show what went through.</p></body></html>
"""


def is_service_unavailable(exc: BaseException | None) -> bool:
    """A connection lost, refused or broken: the database's (Django's errors, and a query the database gave up
    on), or the cache's, where the sign-in throttles and lockouts count (redis-py's errors)."""
    return isinstance(exc, OperationalError | InterfaceError | RedisError)


def service_unavailable(request: HttpRequest) -> HttpResponse:
    """503 with ``Retry-After``: JSON under ``/api/``, a plain page elsewhere; it touches no database."""
    if _is_api(request):
        response: HttpResponse = JsonResponse({"detail": UNAVAILABLE_DETAIL, "code": "service_unavailable"}, status=503)
    else:
        page = UNAVAILABLE_PAGE.format(orders=reverse("orders:list"))
        response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
